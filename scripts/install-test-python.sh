#!/usr/bin/env bash
# Installs the Python packages the tests use as outside oracles into the project's venv (.venv,
# or $IMB_VENV) if they are not there yet: iphone_backup_decrypt (PyPI, MIT) decrypts the
# encrypted iPhone backups that cloudkit-sim packs (crates/ios-backup/tests/oracle.rs);
# cryptography (PyPI, Apache-2.0/BSD, OpenSSL-backed) verifies the ECDSA signature of the
# simulator's PCS service identity (crates/cloudkit-sim/tests/pcs_identity.rs); phonenumbers
# (PyPI, Apache-2.0, Google's libphonenumber metadata) gives the E.164 form of the contacts tests'
# numbers and vobject (PyPI, Apache-2.0) is a second vCard parser (crates/contacts/tests).
# Idempotent; prints the venv's python path on stdout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${IMB_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import iphone_backup_decrypt' 2>/dev/null; then
  echo "installing iphone_backup_decrypt into $venv (first run only)…" >&2
  "$venv/bin/pip" install --quiet "iphone_backup_decrypt>=0.9,<1" >&2
fi
if ! "$venv/bin/python" -c 'import cryptography' 2>/dev/null; then
  echo "installing cryptography into $venv (first run only)…" >&2
  "$venv/bin/pip" install --quiet "cryptography>=42" >&2
fi
for module in phonenumbers vobject; do
  if ! "$venv/bin/python" -c "import $module" 2>/dev/null; then
    echo "installing $module into $venv (first run only)…" >&2
    "$venv/bin/pip" install --quiet "$module" >&2
  fi
done
echo "$venv/bin/python"
