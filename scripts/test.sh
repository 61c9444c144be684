#!/usr/bin/env bash
# Runs every test of the project: unit, protocol, store conformance on SQLite and PostgreSQL,
# end-to-end sync against the simulator, and delivery into a real Synapse.
# Installs what the tests need first (PostgreSQL server binaries, ffmpeg and libheif's tools via
# apt-get, Synapse, the iphone_backup_decrypt oracle and Radicale via pip into .venv); each step is a no-op
# when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-postgres.sh
scripts/install-media-tools.sh
scripts/install-synapse.sh >/dev/null
scripts/install-test-python.sh >/dev/null
scripts/install-radicale.sh >/dev/null
exec cargo test --workspace --locked "$@"
