#!/usr/bin/env bash
# Runs every fuzz target of the workspace for SECONDS each (default 60), one after the other,
# and prints per target the cases run and the findings. Exit status 1 if any target found a
# failing input (its shrunk input is printed as hex; keep it as a named regression test).
#
#   scripts/fuzz.sh [SECONDS]
#
# The targets are ordinary test functions (proptest on the stable toolchain, see FUZZING.md);
# a plain `cargo test` runs each for a few hundred fixed cases.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT

# package  test-file  (each file's fuzz_* functions are its targets)
suites=(
  "cloudkit fuzz"
  "cloudkit fuzz_pcs"
  "imessage fuzz"
  "matrix fuzz_appservice"
)

echo "building the fuzz targets…" >&2
for suite in "${suites[@]}"; do
  set -- $suite
  cargo test -q -p "$1" --test "$2" --no-run >&2
done

started=$(date +%s)
failed=0
for suite in "${suites[@]}"; do
  set -- $suite
  # One target at a time, so each gets the machine for its SECONDS.
  if ! FUZZ_SECONDS="$SECONDS_PER_TARGET" FUZZ_REPORT="$report" \
      cargo test -q -p "$1" --test "$2" fuzz_ -- --test-threads=1 >/dev/null 2>&1; then
    failed=1
  fi
done

echo
echo "fuzz run: ${SECONDS_PER_TARGET}s per target, $(( $(date +%s) - started ))s in all"
grep '^fuzz ' "$report" | sed 's/^fuzz /  /'
if grep -q '^FINDING' "$report"; then
  echo
  echo "findings:"
  sed -n '/^FINDING/,/^minimal failing input/p' "$report"
fi
total=$(awk '/^fuzz / { n += $3 } END { print n + 0 }' "$report")
findings=$(grep -c '^FINDING' "$report" || true)
echo
echo "total: $(grep -c '^fuzz ' "$report") targets, $total cases, $findings findings"
exit "$failed"
