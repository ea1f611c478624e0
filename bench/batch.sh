#!/usr/bin/env bash
# Benchmark: flowrun's own speed, against a minimal stub server (examples/stub.rs, a process of
# its own on 127.0.0.1 that answers with fixed bodies — not the simulator, so that what is
# measured is the runner).
#
#   bash bench/batch.sh
#
# Prints, for the inbound flow (4 requests per run):
#   1. one run as a whole process: wall time (median of 10) and peak memory;
#   2. 1,000 runs at concurrency 1 and 10,000 at concurrency 64: requests/s (median and best
#      of 5) and peak memory, each beside the raw limit: wrk against the same stub with the
#      same requests on as many connections (median of 5 runs of 2 s), and flowrun's share of it;
#   3. flowrun's HTTP client alone on one connection;
#   4. 100,000 runs at concurrency 64: requests/s and peak memory (must stay under 64 MiB:
#      input is streamed), then the latency per step of that run.
# Reading the figures: requests/s is what the runner sustains end to end (templates, JSON,
# HTTP, reports) on this machine's cores, which the stub shares; runs/s is requests/s / 4.
# Shared machines vary from second to second, so each figure is measured five times: the
# median is the typical figure, the best what the runner does when nothing else competes.
# wrk and flowrun take turns (wrk, flowrun, wrk, flowrun...), so that both medians are of the
# same minutes. Peak memory is the process's maximum resident set (GNU time's %M), the largest
# of the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin flowrun --example stub
bin=target/release/flowrun
port=18790 target=.
source bench/stub.sh
peak() { /usr/bin/time -f "%M" -o "$work/time" "$@" > "$work/out"; echo $(( $(cat "$work/time") / 1024 )); }
rps() { sed -n 's/.* requests, \([0-9]*\) requests\/s/\1/p' "$work/out"; }

echo "flowrun batch benchmark: inbound flow, stub server on 127.0.0.1, $(nproc) cores"
times=()
for _ in $(seq 1 10); do
  start=$(date +%s%N)
  "$bin" run flows/inbound.yaml --inputs flows/examples/inbound.inputs.yaml --quiet
  times+=($(( ($(date +%s%N) - start) / 1000 )))
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 5p)
mem=$(peak "$bin" run flows/inbound.yaml --inputs flows/examples/inbound.inputs.yaml --quiet)
printf '  one run, whole process:        %6d.%03d ms   peak %3d MiB\n' $((median / 1000)) $((median % 1000)) "$mem"
# The raw limit: a load tool (wrk) against the same stub, sending the very requests one inbound
# run sends (bench/replay.py turns a run's JSON report into a wrk script: same methods, paths,
# headers and bodies, in the same order).
raw=""
if command -v wrk > /dev/null; then
  "$bin" run flows/inbound.yaml --inputs flows/examples/inbound.inputs.yaml --format json \
    | python3 bench/replay.py > "$work/replay.lua"
  raw=yes
fi
wrk_rps() {
  wrk -t"$1" -c"$2" -d2s -s "$work/replay.lua" "$SCRT_BASE_URL" | awk '/Requests\/sec/ { printf "%d", $2 }'
}
for spec in "1000 1 1" "10000 64 2"; do
  set -- $spec
  make_input "$1"
  figures=() raws=() mem=0
  for _ in 1 2 3 4 5; do
    if [ -n "$raw" ]; then raws+=("$(wrk_rps "$3" "$2")"); fi
    m=$(peak "$bin" run flows/inbound.yaml --inputs-jsonl "$work/$1.jsonl" --concurrency "$2")
    if (( m > mem )); then mem=$m; fi
    figures+=("$(rps)")
  done
  sorted=$(printf '%s\n' "${figures[@]}" | sort -n)
  median=$(sed -n 3p <<< "$sorted")
  printf '  %6d runs, concurrency %2d:  %8d requests/s median, %6d best   peak %3d MiB\n' \
    "$1" "$2" "$median" "$(sed -n 5p <<< "$sorted")" "$mem"
  if [ -n "$raw" ]; then
    limit=$(printf '%s\n' "${raws[@]}" | sort -n | sed -n 3p)
    share="no share: wrk got no answers"
    if (( ${limit:-0} > 0 )); then share="flowrun at $(( median * 100 / limit ))% of it"; fi
    printf '     raw limit, wrk on %2d connections: %8d requests/s median; %s\n' "$2" "${limit:-0}" "$share"
  fi
done
if [ -n "$raw" ]; then
  # What the HTTP client alone gets on one connection: the same requests sent in a loop with
  # flowrun's HTTP client, no flow (benches/run.rs against this stub). The gap to wrk is the
  # client library's; the gap from here to flowrun's figure is the runner's own.
  us=$(STUB_URL="$SCRT_BASE_URL" RUNS=1000 cargo bench --quiet --bench run 2> /dev/null \
    | sed -n 's/ *raw HTTP: *\([0-9.]*\) .*/\1/p')
  [ -n "$us" ] && printf '  the HTTP client alone (same requests, 1 connection): %d requests/s\n' \
    "$(awk -v us="$us" 'BEGIN { printf "%d", 1000000 / us }')"
else
  echo "  raw limit: wrk is not installed (apt-get install wrk)"
fi
make_input 100000
mem=$(peak "$bin" run flows/inbound.yaml --inputs-jsonl "$work/100000.jsonl" --concurrency 64)
printf '  100000 runs, concurrency 64:  %8d requests/s   peak %3d MiB\n' "$(rps)" "$mem"
echo "  latency per step (100000 runs):"
sed -n '/step/,$p' "$work/out"
