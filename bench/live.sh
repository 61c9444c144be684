#!/usr/bin/env bash
# Builds the release binaries and runs the live-edge latency benchmark (see BENCHMARKS.md).
# Extra arguments go to live-bench, e.g. `bench/live.sh --big-chat 4000 --interval 5`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-synapse.sh >/dev/null
cargo build --release --locked -p cloudkit-sim -p imessage-bridge -p bench
exec target/release/live-bench "$@"
