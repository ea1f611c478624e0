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
#   2. serve, paced: 10,000 events published one at a time at 1,000 per second (the simulator's
#      HTTP API over one keep-alive connection): the delay from an event being taken to its
#      run's first request and the event's age then (from its CreatedDate, which has millisecond
#      resolution), p50 and p99;
#   3. serve, backlog: 10,000 events published at once, drained through the subscription (flow
#      control, one journaled run per event, replay ids stored): events/s, the same latencies
#      (now mostly time spent queueing behind 64 runs in flight);
#   4. serve: EVENTS more, the same way: events/s, and the service's resident memory after
#      10,000 and after 10,000 + EVENTS events, and its peak (flat memory: the journal holds
#      the runs, the service does not).
# Latencies are read from the service's /metrics histograms (the difference between two
# scrapes, so each phase counts its own events), interpolated within a bucket the way
# Prometheus's histogram_quantile does.
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
scrape() { curl -s "http://$addr/metrics" > "$work/$1.prom"; }
ended() { curl -s "http://$addr/metrics" | awk '/^flowrun_runs_total/ { n += $2 } END { print n + 0 }'; }
# quantiles BEFORE AFTER METRIC: "p50 X ms  p99 Y ms" of METRIC's observations between two scrapes.
quantiles() {
  python3 - "$work/$1.prom" "$work/$2.prom" "$3" <<'PY'
import re, sys
def buckets(path, name):
    out = {}
    for line in open(path):
        m = re.match(r'%s_bucket\{le="([^"]+)"\} (\S+)' % name, line)
        if m: out[float(m.group(1))] = float(m.group(2))
    return out
before, after = buckets(sys.argv[1], sys.argv[3]), buckets(sys.argv[2], sys.argv[3])
bounds = sorted(after)
counts = [after[b] - before.get(b, 0) for b in bounds]
def q(p):
    rank, lower, below = p * counts[-1], 0.0, 0.0
    for b, c in zip(bounds, counts):
        if c >= rank:
            if b == float('inf'): return lower
            return lower + (b - lower) * (rank - below) / max(c - below, 1)
        lower, below = b, c
print('p50 %.2f ms  p99 %.2f ms' % (q(0.5) * 1000, q(0.99) * 1000))
PY
}
latencies() { # latencies BEFORE AFTER
  printf 'event to first request %s;  event age then %s' \
    "$(quantiles "$1" "$2" flowrun_event_to_first_request_seconds)" \
    "$(quantiles "$1" "$2" flowrun_event_age_at_first_request_seconds)"
}
drain() { # publish $1 events at once, wait until $2 runs have ended in total
  start=$(now)
  curl -s -X POST "http://$sim/sim/transfer" -d "{\"target\":\"external\",\"count\":$1}" > /dev/null
  until [ "$(ended)" -ge "$2" ]; do sleep 0.05; done
  echo $(( ($(now) - start) / 1000000 ))
}
pace() { # publish $1 events one at a time, $2 per second
  python3 - "$sim" "$1" "$2" <<'PY'
import http.client, json, sys, time
host, port = sys.argv[1].split(':'); n, rate = int(sys.argv[2]), float(sys.argv[3])
c = http.client.HTTPConnection(host, int(port))
start = time.monotonic()
for i in range(n):
    wait = start + i / rate - time.monotonic()
    if wait > 0: time.sleep(wait)
    c.request('POST', '/sim/transfer', body=json.dumps({'target': 'external'}))
    r = c.getresponse(); r.read()
    assert r.status < 300, r.status
PY
}
scrape start
start=$(now)
pace 10000 1000
until [ "$(ended)" -ge 10000 ]; do sleep 0.05; done
ms=$(( ($(now) - start) / 1000000 ))
scrape paced
printf '  serve, 10000 events at 1000/s:  %7d events/s  (%d ms)   %s\n' $(( 10000 * 1000 / ms )) "$ms" "$(latencies start paced)"
ms=$(drain 10000 20000)
scrape backlog
rss1=$(( $(ps -o rss= -p "$pid") / 1024 ))
printf '  serve, 10000 events at once:    %7d events/s  (%d ms)   %s   RSS %d MiB\n' \
  $(( 10000 * 1000 / ms )) "$ms" "$(latencies paced backlog)" "$rss1"
ms=$(drain "$events" $(( 20000 + events )))
scrape more
rss2=$(( $(ps -o rss= -p "$pid") / 1024 ))
kill -TERM "$pid"; wait %2 2>/dev/null || true
printf '  serve, %d more at once:   %7d events/s  (%d ms)   %s   RSS %d MiB, peak %d MiB\n' \
  "$events" $(( events * 1000 / ms )) "$ms" "$(latencies backlog more)" "$rss2" $(( $(cat "$work/serve.peak") / 1024 ))
grep -c 'outcome=started' "$work/serve.out" | xargs printf '  events started in the log: %d\n'
