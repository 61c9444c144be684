#!/usr/bin/env bash
# Installs Debian packages (the arguments) with apt-get, as the install-*.sh scripts need them:
# through sudo unless run as root, non-interactive, without recommended packages, after an
# `apt-get update`. All output goes to stderr. The callers check first that something is missing,
# so a ready machine never runs apt-get.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update -q >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
