#!/usr/bin/env bash
# Starts a throwaway Synapse for the demo and the integration tests (one way for both).
#   start-synapse.sh DIR PORT SERVER_NAME REGISTRATION.yaml
# Writes DIR/homeserver.yaml (SQLite, loopback only, no federation key servers, rate limits off
# for the appservice's users, pushers may call 127.0.0.1), generates keys, then runs Synapse in the foreground (exec), so the
# caller owns the process. Readiness: poll http://127.0.0.1:PORT/_matrix/client/versions.
set -euo pipefail
dir="$1"; port="$2"; server_name="$3"; registration="$4"
python="$("$(dirname "$0")/install-synapse.sh")"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
registration="$(cd "$(dirname "$registration")" && pwd)/$(basename "$registration")"
secret_file="$dir/registration_shared_secret"
[ -f "$secret_file" ] || "$python" -c 'import secrets; print(secrets.token_hex(24))' > "$secret_file"
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
"$python" -m synapse.app.homeserver -c "$dir/homeserver.yaml" --generate-keys >/dev/null 2>&1
exec "$python" -m synapse.app.homeserver -c "$dir/homeserver.yaml"
