#!/usr/bin/env bash
# The main job: a box with two synthetic cameras publishing metadata, events and
# pictures over zenoh on loopback, the ingest storing them behind its data API, and
# a live view of what the box publishes. Ctrl-C stops everything.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/setup.sh

cargo build --locked -p venue-edge -p venue-ingest
BIN="${CARGO_TARGET_DIR:-target}/debug/venue-edge"
INGEST="${CARGO_TARGET_DIR:-target}/debug/venue-ingest"
mkdir -p .run
"$BIN" run > .run/venue-edge.log 2>&1 &
PID=$!
# The cloud side: stores everything the box sends (SQLite in .run/ingest.db, objects
# in .run/objects), acknowledges it, and serves the data API.
"$INGEST" > .run/venue-ingest.log 2>&1 &
IPID=$!
trap 'kill -TERM $PID $IPID 2>/dev/null; wait $PID $IPID 2>/dev/null; echo; echo "stopped (logs: .run/venue-edge.log, .run/venue-ingest.log)"' EXIT
sleep 2
for p in "$PID:venue-edge" "$IPID:venue-ingest"; do
    if ! kill -0 "${p%%:*}" 2>/dev/null; then cat ".run/${p#*:}.log" >&2; exit 1; fi
done
cat <<MSG
venue-edge is running (pid $PID): two synthetic cameras (an ice rink and a ski jump),
segmented, tracked and tagged; zenoh on tcp/127.0.0.1:7447.
venue-ingest is running (pid $IPID): it stores and acknowledges what the box sends.

  events arriving:   http://127.0.0.1:8090/api/v1/events
  stream statistics: http://127.0.0.1:8090/api/v1/stats
  box metrics:       http://127.0.0.1:9464/metrics
  logs:              .run/venue-edge.log, .run/venue-ingest.log
  one key:           $BIN tail --key 'venue/*/*/cam-1/health'
Live messages follow (one JSON line each); Ctrl-C stops both.
MSG
"$BIN" tail
