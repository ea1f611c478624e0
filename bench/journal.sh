#!/usr/bin/env bash
# Benchmark: journaled runs against plain ones, same stub, same script run (the machine is
# shared and noisy, so the two are always measured side by side, interleaved).
#
#   bash bench/journal.sh
#
# Prints, for the inbound flow (4 requests per run) against the stub server:
#   1. 1,000 runs at concurrency 1 and 10,000 at concurrency 64: requests/s plain and with
#      --journal sqlite:..., median of 5 each, and the journaled share of plain;
#   2. journal bytes per run (database + write-ahead log after the 10,000 runs);
#   3. 100,000 journaled runs at concurrency 64: requests/s and peak memory (must stay under
#      64 MiB).
# Targets (issue "Durable runs"): concurrency 64 journaled >= 50% of plain, concurrency 1 >= 70%.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin flowrun --example stub
bin=target/release/flowrun
port=18791 target=.
source bench/stub.sh
peak() { /usr/bin/time -f "%M" -o "$work/time" "$@" > "$work/out"; echo $(( $(cat "$work/time") / 1024 )); }
rps() { sed -n 's/.* requests, \([0-9]*\) requests\/s/\1/p' "$work/out"; }
median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }

echo "flowrun journal benchmark: inbound flow, stub server on 127.0.0.1, $(nproc) cores"
for spec in "1000 1" "10000 64"; do
  set -- $spec
  make_input "$1"
  plain=() journaled=() bytes=0
  for i in 1 2 3 4 5; do
    peak "$bin" run flows/inbound.yaml --inputs-jsonl "$work/$1.jsonl" --concurrency "$2" > /dev/null
    plain+=("$(rps)")
    rm -f "$work"/j.db*
    peak "$bin" run flows/inbound.yaml --inputs-jsonl "$work/$1.jsonl" --concurrency "$2" \
      --journal "sqlite:$work/j.db" > /dev/null
    journaled+=("$(rps)")
    bytes=$(cat "$work"/j.db* | wc -c)
  done
  p=$(median "${plain[@]}") j=$(median "${journaled[@]}")
  printf '  %6d runs, concurrency %2d:  plain %6d requests/s, journaled %6d (%d%% of plain)\n' \
    "$1" "$2" "$p" "$j" $(( j * 100 / p ))
  printf '                                 journal: %d bytes per run\n' $(( bytes / $1 ))
done
make_input 100000
rm -f "$work"/j.db*
mem=$(peak "$bin" run flows/inbound.yaml --inputs-jsonl "$work/100000.jsonl" --concurrency 64 \
  --journal "sqlite:$work/j.db")
printf '  100000 journaled runs, concurrency 64:  %6d requests/s   peak %3d MiB   journal %d MiB\n' \
  "$(rps)" "$mem" $(( $(cat "$work"/j.db* | wc -c) / 1048576 ))
