#!/usr/bin/env bash
# Installs Synapse from PyPI into the project's venv (.venv) if it is not there yet, and Debian's
# eatmydata (which start-synapse.sh runs the throwaway Synapse under; see there) when apt-get is
# here. Idempotent; prints the venv's python path on stdout, reports on stderr.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${IMB_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import synapse' 2>/dev/null; then
  echo "installing Synapse into $venv (first run only)…" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  "$venv/bin/pip" install --quiet "matrix-synapse>=1.100" >&2
fi
if ! command -v eatmydata >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing eatmydata (a throwaway Synapse without fsync)…" >&2
  "$root/scripts/apt-install.sh" eatmydata || echo "eatmydata not installed: Synapse will fsync (slower, same results)" >&2
fi
echo "$venv/bin/python"
