#!/usr/bin/env bash
# The main job: a box with two synthetic cameras publishing per-frame metadata
# over zenoh on loopback, and a live view of what it publishes. Ctrl-C stops both.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh

cargo build --locked -p venue-edge
BIN="${CARGO_TARGET_DIR:-target}/debug/venue-edge"
mkdir -p .run
"$BIN" run > .run/venue-edge.log 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; echo; echo "venue-edge stopped (log: .run/venue-edge.log)"' EXIT
sleep 1
if ! kill -0 "$PID" 2>/dev/null; then cat .run/venue-edge.log >&2; exit 1; fi
cat <<MSG
venue-edge is running (pid $PID): two synthetic cameras, zenoh on tcp/127.0.0.1:7447.
  metrics:  curl http://127.0.0.1:9464/metrics
  log:      .run/venue-edge.log
  one key:  $BIN tail --key 'venue/*/*/cam-1/health'
Live messages follow (one JSON line each); Ctrl-C stops.
MSG
"$BIN" tail
