#!/bin/sh
# Installs imessage-bridge: builds the binary (or takes one already built), copies it to
# PREFIX/bin, runs `imessage-bridge init` (asking on a terminal, or with the flags after `--`),
# prints the line to add to Synapse's homeserver.yaml and, with --systemd, writes a unit that
# keeps `imessage-bridge run` going. POSIX sh; Linux and macOS (no systemd on macOS).
#
#   scripts/install.sh [--prefix DIR] [--config FILE] [--no-build] [--binary FILE]
#                      [--systemd user|system] [--unit-dir DIR] [--no-init] [-- INIT FLAGS…]
#
# Defaults: as root, --prefix /usr/local and --config /etc/imessage-bridge/config.yaml; else
# --prefix ~/.local and --config ~/.config/imessage-bridge/config.yaml. The systemd unit goes to
# /etc/systemd/system (system) or ~/.config/systemd/user (user) unless --unit-dir says otherwise.
set -eu

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ]; then
    prefix=/usr/local
    config=/etc/imessage-bridge/config.yaml
else
    prefix="$HOME/.local"
    config="$HOME/.config/imessage-bridge/config.yaml"
fi
build=yes
binary=
systemd=
unit_dir=
run_init=yes

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; prefix=$2; shift 2 ;;
        --config) [ $# -ge 2 ] || die "--config needs a file"; config=$2; shift 2 ;;
        --no-build) build=no; shift ;;
        --binary) [ $# -ge 2 ] || die "--binary needs a file"; binary=$2; build=no; shift 2 ;;
        --systemd)
            [ $# -ge 2 ] || die "--systemd needs user or system"
            case "$2" in user | system) systemd=$2 ;; *) die "--systemd takes user or system, not $2" ;; esac
            shift 2 ;;
        --unit-dir) [ $# -ge 2 ] || die "--unit-dir needs a folder"; unit_dir=$2; shift 2 ;;
        --no-init) run_init=no; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; break ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

# Absolute paths: the unit and the homeserver need them.
absolute() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$(pwd)" "$1" ;;
    esac
}
prefix=$(absolute "$prefix")
config=$(absolute "$config")

if [ -n "$systemd" ] && [ "$(uname -s)" = Darwin ]; then
    die "--systemd: macOS has no systemd; run \`imessage-bridge -c $config run\` from a launchd agent instead"
fi

# 1. The binary.
bin="$prefix/bin/imessage-bridge"
mkdir -p "$prefix/bin"
if [ "$build" = yes ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo is not installed (https://rustup.rs), or pass --binary FILE"
    echo "building imessage-bridge (release) into $prefix/bin …" >&2
    cargo install --locked --path "$repo/crates/imessage-bridge" --root "$prefix" >&2
else
    [ -n "$binary" ] || binary="$repo/target/release/imessage-bridge"
    [ -x "$binary" ] || die "$binary is not an executable (build it first, or pass --binary FILE)"
    if [ "$(absolute "$binary")" != "$bin" ]; then
        cp "$binary" "$bin.new"
        chmod 0755 "$bin.new"
        mv "$bin.new" "$bin"
    fi
fi
echo "installed $bin ($("$bin" --version))" >&2

# 2. The config and the registration (init keeps tokens and choices of an existing config).
config_dir=$(dirname "$config")
mkdir -p "$config_dir"
chmod 0700 "$config_dir" 2>/dev/null || true
if [ "$run_init" = yes ]; then
    "$bin" -c "$config" init "$@" || die "init failed; fix what it says and run install.sh again (it keeps what init wrote)"
fi
registration="$config_dir/registration.yaml"

# 3. What the homeserver needs.
echo "Add the registration to Synapse's homeserver.yaml and restart Synapse:" >&2
echo "app_service_config_files:"
echo "  - $registration"

# 4. The service.
if [ -n "$systemd" ]; then
    if [ -z "$unit_dir" ]; then
        if [ "$systemd" = system ]; then unit_dir=/etc/systemd/system; else unit_dir="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"; fi
    fi
    mkdir -p "$unit_dir"
    unit="$unit_dir/imessage-bridge.service"
    if [ "$systemd" = system ]; then
        user=${SUDO_USER:-$(id -un)}
        user_line="User=$user"
        wanted=multi-user.target
        enable="systemctl daemon-reload && systemctl enable --now imessage-bridge"
    else
        user_line=
        wanted=default.target
        enable="systemctl --user daemon-reload && systemctl --user enable --now imessage-bridge"
    fi
    {
        echo "[Unit]"
        echo "Description=imessage-bridge: iMessage history from iCloud into Matrix"
        echo "Wants=network-online.target"
        echo "After=network-online.target"
        echo
        echo "[Service]"
        echo "ExecStart=\"$bin\" -c \"$config\" run"
        echo "Restart=on-failure"
        echo "RestartSec=5"
        [ -z "$user_line" ] || echo "$user_line"
        echo
        echo "[Install]"
        echo "WantedBy=$wanted"
    } >"$unit.new"
    chmod 0644 "$unit.new"
    mv "$unit.new" "$unit"
    echo "wrote $unit; start it with: $enable" >&2
fi
echo "then check the setup with: $bin -c $config doctor" >&2
