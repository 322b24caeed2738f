#!/usr/bin/env bash
# Installs what the project needs beyond the Rust toolchain, without asking:
# Debian packages through apt-get, Python tools into ./.venv. Safe to re-run:
# it only installs what is missing. Sourced by demo.sh and test.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "setup: need root (or sudo) to run: $*" >&2; return 1; fi
}

# Debian packages: a C toolchain for crates with C parts, Python with venv, and
# mosquitto for the MQTT tests.
need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v python3 >/dev/null || need_apt+=(python3)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then need_apt+=(python3-venv); fi
# The MQTT broker the integration tests start on loopback (their own instance, on
# a free port: the system service the package ships is not needed).
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# GStreamer: headers for gstreamer-rs (capture of network and file feeds, encoding),
# the RTSP server library the capture tests serve a camera with, the plugins those
# pipelines use (x264enc is in -ugly, avdec_h264 in -libav, h264parse/srtsrc in -bad)
# and the command-line tools (gst-launch-1.0 for the encoder benchmark,
# gst-discoverer-1.0 and ffprobe to check produced files).
pkg-config --exists gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0 2>/dev/null ||
    need_apt+=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev)
pkg-config --exists gstreamer-rtsp-server-1.0 2>/dev/null || need_apt+=(libgstrtspserver-1.0-dev)
for pkg in gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
    gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need_apt+=("$pkg")
done
command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
# libclang for bindgen: the `v4l` crate generates its V4L2 bindings from the kernel
# headers at build time (venue-edge's default `v4l2` feature).
dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q "ok installed" || need_apt+=(libclang-dev)
# PostgreSQL for the ingest's production-path tests (the tests run their own server
# in a temporary directory; the packaged cluster is not used).
[ -d /usr/lib/postgresql ] || need_apt+=(postgresql)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    # Tests start their own broker; keep the packaged service from holding port 1883.
    if [[ " ${need_apt[*]} " == *" mosquitto "* ]] && [ -d /run/systemd/system ]; then
        as_root systemctl disable --now mosquitto >/dev/null 2>&1 || true
    fi
    if [[ " ${need_apt[*]} " == *" postgresql "* ]] && [ -d /run/systemd/system ]; then
        as_root systemctl disable --now postgresql >/dev/null 2>&1 || true
    fi
fi

# Python tools for the contract tests, in a local venv.
setup_python() {
    local req="$ROOT/tests/python/requirements.txt" stamp="$ROOT/.venv/.requirements"
    if [ ! -x "$ROOT/.venv/bin/python" ]; then python3 -m venv "$ROOT/.venv"; fi
    if ! cmp -s "$req" "$stamp" 2>/dev/null; then
        echo "setup: installing Python test tools into .venv"
        "$ROOT/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
        cp "$req" "$stamp"
    fi
}

# A real zenoh router for the router-restart tests: zenohd at the workspace's zenoh
# version, TCP only (no QUIC/TLS/WebSocket/shared memory, like the box), built once
# into .tools/ (git-ignored). About 7 CPU-minutes; skipped when it is there.
ZENOHD_VERSION=1.10.2
setup_zenohd() {
    local bin="$ROOT/.tools/bin/zenohd"
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "v$ZENOHD_VERSION"; then return; fi
    echo "setup: building zenohd $ZENOHD_VERSION into .tools (once)"
    cargo install zenohd --version "=$ZENOHD_VERSION" --locked --root "$ROOT/.tools" \
        --no-default-features --features zenoh/transport_tcp --quiet
}
