#!/usr/bin/env bash
# Installs the matrix-js-sdk client the contacts tests read room names with
# (tools/js-client/room-names.mjs: Element Web's engine computing each room's name and avatar):
# Node.js and npm via apt-get if they are missing, then the pinned packages of
# tools/js-client/package-lock.json with `npm ci`. Idempotent: does nothing when node, npm and an
# up-to-date node_modules are there (npm ci would delete and refetch node_modules every time).
# Reports on stderr.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
client="$root/tools/js-client"

log() { echo "install-js-client: $*" >&2; }

# NodeSource's nodejs package carries npm (and conflicts with Debian's npm); Debian's does not.
for tool in node npm; do
    command -v "$tool" >/dev/null 2>&1 && continue
    if ! command -v apt-get >/dev/null 2>&1; then
        log "$tool missing and no apt-get here: install Node.js 20 or newer with npm (macOS: brew install node)"
        exit 1
    fi
    package=nodejs
    [ "$tool" = npm ] && package=npm
    log "installing $package"
    "$root/scripts/apt-install.sh" "$package"
done
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
    # Debian 12's and Ubuntu 24.04's own nodejs is 18.
    log "node $(node --version) is too old: matrix-js-sdk 37.5.0 needs Node.js 20 or newer (Debian 13, or NodeSource's nodejs_20.x repository)"
    exit 1
fi

# npm writes the lock file's copy into node_modules/.package-lock.json on install: when it
# matches the committed lock, the packages are the pinned ones.
if [ -f "$client/node_modules/.package-lock.json" ] && [ -d "$client/node_modules/matrix-js-sdk" ] \
    && node -e '
        const fs = require("fs");
        const [lock, installed] = process.argv.slice(1).map((f) => JSON.parse(fs.readFileSync(f, "utf8")).packages);
        delete lock[""];
        process.exit(JSON.stringify(lock) === JSON.stringify(installed) ? 0 : 1);
    ' "$client/package-lock.json" "$client/node_modules/.package-lock.json"; then
    log "present: matrix-js-sdk $(node -p "require('$client/node_modules/matrix-js-sdk/package.json').version") with node $(node --version)"
    exit 0
fi
log "npm ci in tools/js-client"
(cd "$client" && npm ci --no-audit --no-fund >&2)
log "ok: matrix-js-sdk $(node -p "require('$client/node_modules/matrix-js-sdk/package.json').version") with node $(node --version)"
