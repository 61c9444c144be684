#!/usr/bin/env bash
# The crash campaign: for each seed, a simulated account (faults and later messages), a real
# Synapse and the bridge's `run --once`, SIGKILLed KILLS times at moments drawn from the seed's
# RNG across sync, attachment download, delivery and media upload, restarted each time; then every
# room paginated like a client and compared with the simulator's truth. Prints a table per seed
# and the totals; exits 1 if anything is missing, duplicated, out of order or misattributed.
#
#   scripts/crash-campaign.sh [SEEDS] [KILLS]    SEEDS: a count (seeds 1..N) or a list "3,7"; default 2 and 20
#   CAMPAIGN_DEADLINE_SECS=1500                  no new bridge life is started after this (default 25 min)
#   CAMPAIGN_ARGS="--messages 3000"              more crash-campaign flags (see crash-campaign --help)
#
# Figures of the last run: RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${1:-2}"
kills="${2:-20}"
scripts/install-media-tools.sh
scripts/install-synapse.sh >/dev/null
cargo build --release --locked -p imessage-bridge -p bench --bin imessage-bridge --bin crash-campaign >&2
# shellcheck disable=SC2086
exec timeout --kill-after=30 "$(( ${CAMPAIGN_DEADLINE_SECS:-1500} + 600 ))" \
  target/release/crash-campaign --seeds "$seeds" --kills "$kills" \
  --deadline-secs "${CAMPAIGN_DEADLINE_SECS:-1500}" ${CAMPAIGN_ARGS:-}
