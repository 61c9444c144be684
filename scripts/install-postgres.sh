#!/usr/bin/env bash
# Installs the PostgreSQL server binaries the store's conformance tests start on their own
# (initdb + postgres from /usr/lib/postgresql/*/bin), and the `postgres` OS user they run as
# when the tests run as root. Idempotent: does nothing when both are already there.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

have_binaries() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

if have_binaries; then
    echo "install-postgres: server binaries present: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
else
    echo "install-postgres: installing the postgresql package"
    "$(dirname "$0")/apt-install.sh" postgresql
    have_binaries || { echo "install-postgres: postgresql installed but no initdb under /usr/lib/postgresql/*/bin" >&2; exit 1; }
fi

# The TLS tests make a throwaway CA and server certificate with the openssl command.
if ! command -v openssl >/dev/null 2>&1; then
    echo "install-postgres: installing openssl (the TLS tests' throwaway CA)"
    "$(dirname "$0")/apt-install.sh" openssl
fi

# The Debian package creates this user; make sure it exists even if the package was installed
# in an unusual way, since root cannot run initdb itself.
if ! id -u postgres >/dev/null 2>&1; then
    echo "install-postgres: creating the postgres system user"
    $SUDO useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi
echo "install-postgres: ok"
