#!/usr/bin/env bash
# The demo: a simulated iCloud account (cloudkit-sim) + a real Synapse + the bridge, then
# `verify` pages every room like a Matrix client. Everything is installed by the project's own
# scripts and runs on 127.0.0.1. Data goes to ./demo-data (removed and recreated each run).
#
#   scripts/demo.sh            run, print the verify table, keep Synapse up to look around
#   scripts/demo.sh --exit     same, but stop everything after verify (exit code = verify's)
#   DEMO_SIM_ARGS="--big-chat 2000 --messages 1000" scripts/demo.sh   a smaller account
#   DEMO_DATABASE=postgres scripts/demo.sh      the store in a throwaway PostgreSQL server
#                                               (demo-data/pg, on a free 127.0.0.1 port, stopped at exit)
#   DEMO_DATABASE=postgres://user@host/db scripts/demo.sh   the store in that (empty) database
#   DEMO_SOURCE=ios-backup scripts/demo.sh      the same account as an encrypted iPhone backup
#                                               (packed by cloudkit-sim, password in a 0600 file)
#   DEMO_SOURCE=chat-db scripts/demo.sh         the same account as a Mac's Messages folder
#                                               (chat.db with Apple's DDL + Attachments/)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
exit_after=0
[ "${1:-}" = "--exit" ] && exit_after=1
data="$root/demo-data"
sim_args=(--seed "${DEMO_SEED:-1}")
# shellcheck disable=SC2206
[ -n "${DEMO_SIM_ARGS:-}" ] && sim_args+=(${DEMO_SIM_ARGS})

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

log "building (release)"
cargo build --release --locked -p cloudkit-sim -p imessage-bridge >&2
bin="$root/target/release"
log "installing Synapse into .venv if needed"
scripts/install-media-tools.sh
python="$(scripts/install-synapse.sh)"

rm -rf "$data"
mkdir -p "$data"
pids=()
cleanup() {
  # PostgreSQL (if the demo started one) stops fast, before the rest.
  if [ -n "${pgbin:-}" ]; then "${pg[@]}" "$pgbin/pg_ctl" -D "$data/pg/data" -m fast -w stop >/dev/null 2>&1 || true; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # URL what
  for _ in $(seq 1 1800); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$2 did not come up ($1)" >&2; return 1
}

# The store: SQLite beside the config by default, else PostgreSQL (see the header).
database="sqlite:bridge.db"
pg=()
case "${DEMO_DATABASE:-}" in
  "" | sqlite*) database="${DEMO_DATABASE:-$database}" ;;
  postgres://* | postgresql://*) database="$DEMO_DATABASE" ;;
  postgres)
    log "starting a throwaway PostgreSQL server"
    scripts/install-postgres.sh >&2
    pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    mkdir -p "$data/pg"
    # As root, initdb refuses to run: the server runs as the postgres OS user.
    if [ "$(id -u)" = 0 ]; then chown postgres: "$data/pg"; pg=(runuser -u postgres --); fi
    "${pg[@]}" "$pgbin/initdb" -D "$data/pg/data" -U postgres --auth=trust --no-locale -E UTF8 > "$data/pg-init.log" 2>&1 \
      || { echo "initdb failed; see $data/pg-init.log" >&2; exit 1; }
    pg_port="$(free_port)"
    "${pg[@]}" "$pgbin/postgres" -D "$data/pg/data" -p "$pg_port" -c listen_addresses=127.0.0.1 \
      -c unix_socket_directories= > "$data/postgres.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 600); do "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.1; done
    "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" || { echo "PostgreSQL did not start; see $data/postgres.log" >&2; exit 1; }
    database="postgres://postgres@127.0.0.1:$pg_port/postgres"
    ;;
  *) echo "DEMO_DATABASE must be empty, postgres, or a sqlite:/postgres:// URI (got $DEMO_DATABASE)" >&2; exit 2 ;;
esac
log "store: $database"

log "starting cloudkit-sim ${sim_args[*]}"
"$bin/cloudkit-sim" serve --listen 127.0.0.1:0 --write-session "$data/session.json" "${sim_args[@]}" \
  > "$data/sim.url" 2> "$data/sim.log" &
pids+=($!)
for _ in $(seq 1 600); do grep -q listening "$data/sim.url" 2>/dev/null && break; sleep 0.1; done
sim_url="$(sed -n 's/^listening on //p' "$data/sim.url")"
[ -n "$sim_url" ] || { echo "cloudkit-sim did not start; see $data/sim.log" >&2; exit 1; }

# The source: CloudKit (the simulator) by default, or the same account written as a Mac's
# Messages folder or packed into an encrypted iPhone backup by the simulator's own writers.
source_args=(--cloudkit "$sim_url" --session "$data/session.json")
case "${DEMO_SOURCE:-cloudkit}" in
  cloudkit) ;;
  chat-db)
    log "writing the account as a Mac's Messages folder"
    "$bin/cloudkit-sim" messages-folder --out "$data/Messages" "${sim_args[@]}" > /dev/null
    source_args=(--source chat-db --source-path "$data/Messages/chat.db")
    ;;
  ios-backup)
    log "writing the account as an encrypted iPhone backup"
    "$bin/cloudkit-sim" messages-folder --out "$data/Messages" "${sim_args[@]}" > /dev/null
    (umask 077 && printf 'demo backup password\n' > "$data/backup-password")
    "$bin/cloudkit-sim" ios-backup --from-dir "$data/Messages" --out "$data/backup" --password-file "$data/backup-password" > /dev/null
    rm -rf "$data/Messages"
    source_args=(--source ios-backup --source-path "$data/backup" --backup-password-file "$data/backup-password")
    ;;
  *) echo "DEMO_SOURCE must be cloudkit, chat-db or ios-backup (got $DEMO_SOURCE)" >&2; exit 2 ;;
esac

hs_port="$(free_port)"; as_port="$(free_port)"
hs_url="http://127.0.0.1:$hs_port"
log "writing bridge config (homeserver $hs_url, appservice 127.0.0.1:$as_port)"
"$bin/imessage-bridge" init --homeserver "$hs_url" --domain localhost --owner @admin:localhost \
  "${source_args[@]}" --database "$database" \
  --out "$data" --listen "127.0.0.1:$as_port" --force

log "starting Synapse"
scripts/start-synapse.sh "$data/synapse" "$hs_port" localhost "$data/registration.yaml" > "$data/synapse.log" 2>&1 &
pids+=($!)
wait_for "$hs_url/_matrix/client/versions" Synapse
password="demo-$(date +%s | tail -c 5)"
"$root/.venv/bin/register_new_matrix_user" -c "$data/synapse/homeserver.yaml" -u admin -p "$password" -a "$hs_url" >/dev/null

log "syncing from ${DEMO_SOURCE:-CloudKit} and delivering into Matrix"
"$bin/imessage-bridge" -c "$data/config.yaml" run --once
log "sync status"
"$bin/imessage-bridge" -c "$data/config.yaml" status
# Synapse never gathers SQLite statistics, and without them every /messages page of a big room
# walks the room's whole event index (2.2 s a page of 250 in the 25,072-message room; 0.15 s
# with statistics): ANALYZE once the history is in, before verify and a client page through it.
"$python" -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=60); c.execute("ANALYZE"); c.commit()' "$data/synapse/homeserver.db"
log "verify: every room paginated backwards like a client"
status=0
"$bin/imessage-bridge" -c "$data/config.yaml" verify || status=$?

cat >&2 <<MSG

Log in with any Matrix client (e.g. Element Desktop, or \`app.element.io\` with a custom homeserver):
  homeserver: $hs_url
  user:       admin
  password:   $password
Scroll any room up: history goes back to its first message.
MSG
if [ "$exit_after" = 1 ]; then exit "$status"; fi
echo "Synapse and the simulator keep running; press Ctrl-C to stop." >&2
wait
