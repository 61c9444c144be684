#!/usr/bin/env bash
# Builds the release binaries and runs the delivery benchmark against one Synapse (see BENCHMARKS.md).
# Extra arguments go to deliver-bench, e.g. `bench/deliver.sh --messages 8000 --rooms 4`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-synapse.sh >/dev/null
cargo build --release --locked -p cloudkit-sim -p imessage-bridge -p bench
exec target/release/deliver-bench "$@"
