#!/usr/bin/env bash
# The chat.db import benchmark, end to end (see BENCHMARKS.md, "chat.db import"): builds the
# release binaries, writes 100k- and 1M-message Messages databases with the simulator (rows
# only: `--no-files`, no 3 GB of attachment files), then runs `chatdb-bench run` on them: bare
# reader vs the bridge's import, peak RSS, and imessage-exporter's text export when it is
# installed.
#
#   WORK   where databases, stores and exports go (default target/chatdb-bench; a real disk)
#   SIZES  message counts (default "100000 1000000"); databases already there are reused
#   PEER   imessage-exporter's binary (default: on PATH, else /tmp/imex/bin/imessage-exporter;
#          `cargo install imessage-exporter --locked --root /tmp/imex`)
# Extra arguments go to chatdb-bench run, e.g. `bench/chatdb.sh --repeat 3` or `--json`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p cloudkit-sim -p bench --bin cloudkit-sim --bin chatdb-bench
work=${WORK:-target/chatdb-bench}
mkdir -p "$work"
dbs=()
for n in ${SIZES:-100000 1000000}; do
  dir="$work/m$n"
  if [ ! -f "$dir/chat.db" ]; then
    rm -rf "$dir.part"
    echo "writing $dir/chat.db ($n messages)" >&2
    RUST_LOG=warn target/release/cloudkit-sim messages-folder --out "$dir.part" --messages "$n" --chats 200 --big-chat 0 --seed 1 --no-files >/dev/null
    rm -rf "$dir" && mv "$dir.part" "$dir"
  fi
  dbs+=(--db "$dir/chat.db")
done
peer=${PEER:-$(command -v imessage-exporter || true)}
if [ -z "$peer" ] && [ -x /tmp/imex/bin/imessage-exporter ]; then peer=/tmp/imex/bin/imessage-exporter; fi
args=("${dbs[@]}" --work-dir "$work")
if [ -n "$peer" ]; then
  args+=(--peer "$peer")
else
  echo "imessage-exporter is not installed: no peer figure" >&2
fi
exec target/release/chatdb-bench run "${args[@]}" "$@"
