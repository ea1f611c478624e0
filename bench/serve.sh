#!/usr/bin/env bash
# Benchmark: `flowrun serve` with the journal on, the simulator publishing RoutingRequested
# events over its Pub/Sub API (real gRPC on 127.0.0.1), each answered by the shipped transfer
# flow (target outside the org: one routing result per event).
#
#   bash bench/serve.sh [EVENTS]      (default 100000)
#
# Prints, side by side in the same run:
#   1. the baseline: the same flow over the same simulator as a batch (`flowrun run
#      --inputs-jsonl`, concurrency 64, the same journal settings): runs/s;
#   2. serve: 10,000 events published at once, drained through the subscription (flow control,
#      one journaled run per event, replay ids stored): events/s, and the delay from an event
#      being taken to its run's first request (p50, p99, from /metrics);
#   3. serve: EVENTS more, the same way: events/s, and the service's resident memory after
#      10,000 and after 10,000 + EVENTS events, and its peak (flat memory: the journal holds
#      the runs, the service does not).
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-100000}
cargo build --release --quiet --bin flowrun
bin=$PWD/target/release/flowrun
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
now() { date +%s%N; }
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" && return 0; sleep 0.1; done; echo "no '$2' in $1"; cat "$1"; exit 1; }

"$bin" sim --port 0 --config bench/serve.sim.yaml > "$work/sim.out" 2>&1 &
wait_for "$work/sim.out" "State: GET"
eval "$(sed -n 's/^ *export /export /p' "$work/sim.out")"
sim=${SCRT_BASE_URL#http://}
echo "flowrun serve benchmark: transfer flow (external target), simulator on 127.0.0.1, $(nproc) cores"

# 1. The baseline: the same runs as a batch.
python3 -c "
import json
for i in range(10000):
    print(json.dumps({'conversation_id': '8a1f2c3d-0000-4000-8000-00000000c0de', 'work_item_id': '0Mw5g000000SimW',
                      'event_id': 'e-%d' % i, 'externally_routed': True}))" > "$work/runs.jsonl"
start=$(now)
"$bin" run flows/transfer.yaml --inputs-jsonl "$work/runs.jsonl" --concurrency 64 --quiet \
  --journal "sqlite:$work/batch.db" --results "$work/results.jsonl" > /dev/null
ms=$(( ($(now) - start) / 1000000 ))
printf '  baseline, batch run, journal:  %7d runs/s    (10000 runs in %d ms)\n' $(( 10000 * 1000 / ms )) "$ms"

# 2 and 3. The service.
/usr/bin/time -f "%M" -o "$work/serve.peak" "$bin" serve flows/transfer.service.yaml \
  --journal "sqlite:$work/serve.db" --listen 127.0.0.1:0 --max-runs 64 > "$work/serve.out" 2>&1 &
wait_for "$work/serve.out" "info subscribed"
addr=$(sed -n 's/.*serving on http:\/\///p' "$work/serve.out" | head -1)
pid=$(pgrep -f "serve flows/transfer.service.yaml --journal sqlite:$work/serve.db" | tail -1)
metric() { curl -s "http://$addr/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
ended() { curl -s "http://$addr/metrics" | awk '/^flowrun_runs_total/ { n += $2 } END { print n + 0 }'; }
drain() { # publish $1 events at once, wait until $2 runs have ended in total
  start=$(now)
  curl -s -X POST "http://$sim/sim/transfer" -d "{\"target\":\"external\",\"count\":$1}" > /dev/null
  until [ "$(ended)" -ge "$2" ]; do sleep 0.05; done
  echo $(( ($(now) - start) / 1000000 ))
}
ms=$(drain 10000 10000)
rss1=$(( $(ps -o rss= -p "$pid") / 1024 ))
p50=$(metric 'flowrun_event_to_first_request_seconds{quantile="0.5"}')
p99=$(metric 'flowrun_event_to_first_request_seconds{quantile="0.99"}')
printf '  serve, 10000 events:           %7d events/s  (%d ms)   event to first request p50 %.2f ms  p99 %.2f ms   RSS %d MiB\n' \
  $(( 10000 * 1000 / ms )) "$ms" "$(echo "$p50 * 1000" | bc -l)" "$(echo "$p99 * 1000" | bc -l)" "$rss1"
ms=$(drain "$events" $(( 10000 + events )))
rss2=$(( $(ps -o rss= -p "$pid") / 1024 ))
p50=$(metric 'flowrun_event_to_first_request_seconds{quantile="0.5"}')
p99=$(metric 'flowrun_event_to_first_request_seconds{quantile="0.99"}')
kill -TERM "$pid"; wait %2 2>/dev/null || true
printf '  serve, %d more events:     %7d events/s  (%d ms)   event to first request p50 %.2f ms  p99 %.2f ms   RSS %d MiB, peak %d MiB\n' \
  "$events" $(( events * 1000 / ms )) "$ms" "$(echo "$p50 * 1000" | bc -l)" "$(echo "$p99 * 1000" | bc -l)" "$rss2" $(( $(cat "$work/serve.peak") / 1024 ))
grep -c 'outcome=started' "$work/serve.out" | xargs printf '  events started in the log: %d\n'
