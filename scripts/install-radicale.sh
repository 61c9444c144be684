#!/usr/bin/env bash
# Installs Radicale (PyPI, GPL-3.0, a CardDAV/CalDAV server) into the project's venv (.venv, or
# $IMB_VENV) if it is not there yet. The CardDAV client's tests (crates/carddav/tests) run against
# a real Radicale started on 127.0.0.1, never a mock; Radicale brings vobject, which the
# simulator's contact tests use as an independent vCard reader.
# Idempotent; prints the venv's python path on stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${IMB_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import radicale, vobject' 2>/dev/null; then
  echo "installing Radicale into $venv (first run only)…" >&2
  "$venv/bin/pip" install --quiet "radicale>=3.9,<4" >&2
fi
echo "$venv/bin/python"
