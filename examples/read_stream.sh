#!/bin/sh
# Read a stream from a pyrf-blocks worker with curl: create a simulated
# instrument, open a stream of its output, then long-poll it to its end,
# acknowledging each answer with the cursor (?after=) of the next poll.
#
#   WORKER=http://127.0.0.1:8750 TOKEN=... sh examples/read_stream.sh
set -eu
WORKER=${WORKER:-http://127.0.0.1:8750}
AUTH="Authorization: Bearer ${TOKEN:-}"
JSON="Content-Type: application/json"
HERE=$(dirname "$0")

curl -sSf -H "$AUTH" -H "$JSON" -o /dev/null -d '{"type": "simulated_instrument",
  "name": "curl_wsa", "params": {"paced": false, "count": 3,
  "samples_per_packet": 256, "packets_per_block": 4}}' "$WORKER/blocks"
STREAM=$(curl -sSf -H "$AUTH" -H "$JSON" -d '{"policy": "block"}' \
  "$WORKER/blocks/curl_wsa/streams" | sed 's/.*"path": "\([^"]*\)".*/\1/')

AFTER=-1
while :; do
  curl -sSf -H "$AUTH" -D headers.txt -o body.bin "$WORKER$STREAM?after=$AFTER&wait=5"
  if grep -qi '^x-pyrf-last-seq' headers.txt; then
    python3 "$HERE/decode_stream_body.py" body.bin
    AFTER=$(grep -i '^x-pyrf-last-seq' headers.txt | tr -d '\r' | cut -d' ' -f2)
  fi
  grep -qi '^x-pyrf-end: 1' headers.txt && break
done
curl -sSf -H "$AUTH" -X DELETE -o /dev/null "$WORKER$STREAM"
rm -f headers.txt body.bin
