#!/usr/bin/env bash
# Installs the programs the matrix crate's media module (crates/matrix/src/media.rs) runs to make
# attachments look in Matrix as on an iPhone: ffmpeg + ffprobe (CAF voice messages → Ogg/Opus,
# waveforms, video dimensions and durations) and heif-convert + heif-info from libheif-examples
# (HEIC photos → JPEG). Without them the bridge still works and sends the originals. Idempotent:
# does nothing (and no apt-get update) when all four are on PATH. Reports on stderr.
set -euo pipefail

log() { echo "install-media-tools: $*" >&2; }

# The Debian package of each program (a function, not an associative array: macOS has bash 3).
package_of() {
    case "$1" in
        ffmpeg | ffprobe) echo ffmpeg ;;
        *) echo libheif-examples ;;
    esac
}

missing_packages() {
    local tool
    for tool in ffmpeg ffprobe heif-convert heif-info; do
        command -v "$tool" >/dev/null 2>&1 || package_of "$tool"
    done | sort -u
}

missing=$(missing_packages)
missing=${missing//$'\n'/ }
if [ -z "$missing" ]; then
    log "present: $(command -v ffmpeg ffprobe heif-convert heif-info | paste -sd ' ')"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    if [ "$(uname -s)" = "Darwin" ]; then
        log "missing: $missing; on macOS run: brew install ffmpeg libheif"
    else
        log "missing: $missing; no apt-get here: install ffmpeg and libheif's command-line tools (heif-convert, heif-info) with your package manager"
    fi
    exit 0
fi

log "installing $missing"
# shellcheck disable=SC2086 # one word per package
"$(dirname "$0")/apt-install.sh" $missing

still=$(missing_packages)
if [ -n "$still" ]; then
    still=${still//$'\n'/ }
    log "installed, but still missing programs from: $still"
    exit 1
fi
log "ok: $(command -v ffmpeg ffprobe heif-convert heif-info | paste -sd ' ')"
