#!/usr/bin/env bash
# Builds the release binaries and runs the sync benchmark (see BENCHMARKS.md).
# Extra arguments go to sync-bench, e.g. `bench/run.sh --sizes 100000 --json`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p cloudkit-sim -p imessage-bridge -p bench
exec target/release/sync-bench "$@"
