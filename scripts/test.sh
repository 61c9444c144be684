#!/usr/bin/env bash
# Runs every test of the project: unit, protocol, store conformance on SQLite and PostgreSQL,
# end-to-end sync against the simulator, and delivery into a real Synapse.
# Installs what the tests need first (PostgreSQL server binaries, ffmpeg and libheif's tools via
# apt-get, Synapse, the iphone_backup_decrypt oracle and Radicale via pip into .venv, Node.js and the
# pinned matrix-js-sdk client of tools/js-client); each step is a no-op when already done.
#
# With cargo-nextest installed (and no arguments), the tests run under nextest (settings in
# .config/nextest.toml: the longest tests first, all binaries' tests scheduled together), except
# the store's, whose PostgreSQL server is shared by the tests of one binary and would be made
# again for every test in nextest's process-per-test model; nextest runs no doctests, so
# `cargo test --doc` runs them. Without nextest, or with arguments (passed to `cargo test`):
# `cargo test --workspace`. Times: TESTING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-postgres.sh
scripts/install-media-tools.sh
scripts/install-synapse.sh >/dev/null
scripts/install-test-python.sh >/dev/null
scripts/install-radicale.sh >/dev/null
scripts/install-js-client.sh
if [ $# -gt 0 ] || [ "${IMB_TEST_RUNNER:-}" = cargo ] || ! cargo nextest --version >/dev/null 2>&1; then
  exec cargo test --workspace --locked "$@"
fi
failed=0
cargo nextest run --workspace --exclude store --locked --no-fail-fast || failed=1
cargo test -p store --locked || failed=1
cargo test --workspace --exclude store --doc --locked || failed=1
exit "$failed"
