#!/usr/bin/env bash
# Starts a box (two synthetic cameras) on free loopback ports and checks its
# output with the Python client written from docs/wire.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${VENUE_EDGE_BIN:-${CARGO_TARGET_DIR:-target}/debug/venue-edge}"
[ -x "$BIN" ] || cargo build --locked -p venue-edge

WORK="$(mktemp -d)"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ZPORT="$(free_port)"
MPORT="$(free_port)"
"$BIN" default-config \
    | sed -e "s#tcp/127.0.0.1:7447#tcp/127.0.0.1:$ZPORT#" -e "s#127.0.0.1:9464#127.0.0.1:$MPORT#" \
          -e "s#^dir = .*#dir = \"$WORK/spool\"#" \
    > "$WORK/config.toml"
"$BIN" check-config "$WORK/config.toml"
"$BIN" run --config "$WORK/config.toml" > "$WORK/daemon.log" 2>&1 &
PID=$!
if ! .venv/bin/python tests/python/wire_client.py live "tcp/127.0.0.1:$ZPORT" --frames 150 --cameras cam-1,cam-2 --timeout 60; then
    echo "--- daemon log" >&2; cat "$WORK/daemon.log" >&2; exit 1
fi
kill -TERM "$PID"
wait "$PID"
PID=""
echo "python contract: ok"
