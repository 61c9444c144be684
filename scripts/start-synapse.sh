#!/usr/bin/env bash
# Starts a throwaway Synapse for the demo and the integration tests (one way for both).
#   start-synapse.sh DIR PORT SERVER_NAME REGISTRATION.yaml
# Writes DIR/homeserver.yaml (SQLite, loopback only, no federation key servers, rate limits off
# for the appservice's users, pushers may call 127.0.0.1) and its keys, then runs Synapse in the foreground (exec), so the
# caller owns the process. Readiness: poll http://127.0.0.1:PORT/_matrix/client/versions.
set -euo pipefail
dir="$1"; port="$2"; server_name="$3"; registration="$4"
# Every test starts a Synapse, so the start spawns no Python but Synapse itself (each extra
# interpreter that imports synapse costs about 1.5 s of CPU): the venv is taken as it is when it
# has Synapse's package, and the secret and the signing key are made here (the key in Synapse's
# own format: "ed25519 <version> <unpadded base64 of the 32-byte seed>").
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${IMB_VENV:-$root/.venv}"
if [ -x "$venv/bin/python" ] && compgen -G "$venv/lib/python3*/site-packages/synapse/__init__.py" >/dev/null; then
  python="$venv/bin/python"
else
  python="$("$(dirname "$0")/install-synapse.sh")"
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
registration="$(cd "$(dirname "$registration")" && pwd)/$(basename "$registration")"
secret_file="$dir/registration_shared_secret"
(umask 077; [ -f "$secret_file" ] || od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > "$secret_file")
(umask 077; [ -f "$dir/signing.key" ] || printf 'ed25519 a_test %s\n' "$(head -c 32 /dev/urandom | base64 | tr -d '=\n')" > "$dir/signing.key")
cat > "$dir/homeserver.yaml" <<YAML
server_name: "$server_name"
pid_file: "$dir/homeserver.pid"
listeners:
  - port: $port
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "$dir/homeserver.db"
media_store_path: "$dir/media_store"
signing_key_path: "$dir/signing.key"
registration_shared_secret: "$(cat "$secret_file")"
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
enable_metrics: false
use_presence: false
app_service_config_files: ["$registration"]
rc_message: {per_second: 100000, burst_count: 100000}
rc_joins: {local: {per_second: 100000, burst_count: 100000}, remote: {per_second: 100000, burst_count: 100000}}
rc_invites: {per_room: {per_second: 100000, burst_count: 100000}, per_user: {per_second: 100000, burst_count: 100000}, per_issuer: {per_second: 100000, burst_count: 100000}}
rc_registration: {per_second: 100000, burst_count: 100000}
rc_login: {address: {per_second: 1000, burst_count: 1000}, account: {per_second: 1000, burst_count: 1000}}
# Outbound requests (pushers) may reach loopback only: the tests' push gateway listens there.
ip_range_whitelist: ["127.0.0.1"]
YAML
cd "$dir"
# This Synapse is throwaway (the demo's and the tests'), so it runs under eatmydata when that is
# installed (scripts/install-synapse.sh does): fsync becomes a no-op. Synapse's SQLite commits
# with synchronous=FULL, several commits per event, and a room's events are persisted one after
# another, so on a VM disk (about 4 ms a sync here) fsync bounded one room's intake: 300 sends
# into one room took 12.8–19.5 s with fsync and 7.9–8.2 s under eatmydata (the same as with the
# database on tmpfs). A killed Synapse loses nothing either way (its writes are in the page
# cache); only a power cut would. The bridge itself never runs under it. SYNAPSE_FSYNC=1 keeps
# fsync.
wrapper=""
if [ "${SYNAPSE_FSYNC:-0}" != 1 ] && command -v eatmydata >/dev/null 2>&1; then
  wrapper=eatmydata
fi
# shellcheck disable=SC2086 # $wrapper is one word or none
exec $wrapper "$python" -m synapse.app.homeserver -c "$dir/homeserver.yaml"
