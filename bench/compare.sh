#!/usr/bin/env bash
# Benchmark: this checkout against a baseline checkout, side by side in the same run, each
# running its own flows/inbound.yaml (the flow as shipped with that version) against the same
# stub server (examples/stub.rs, built from this checkout).
#
#   git worktree add /tmp/base <commit>
#   CARGO_TARGET_DIR=/tmp/base-target cargo build --release --bin flowrun   (in /tmp/base)
#   bash bench/compare.sh /tmp/base /tmp/base-target/release/flowrun
#
# Prints requests/s for 1,000 runs at concurrency 1 and 10,000 runs at concurrency 64: median
# and best of five, the two versions interleaved round by round so that the machine's changing
# load falls on both alike.
set -euo pipefail
cd "$(dirname "$0")/.."
base_dir=${1:?usage: bench/compare.sh BASE_CHECKOUT BASE_BINARY}
base_bin=${2:?usage: bench/compare.sh BASE_CHECKOUT BASE_BINARY}
cargo build --release --quiet --bin flowrun --example stub
bin=target/release/flowrun
port=18791 target=.
source bench/stub.sh
rps() { sed -n 's/.* requests, \([0-9]*\) requests\/s/\1/p' "$work/out"; }
median_best() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%8d median %8d best", v[int((NR + 1) / 2)], v[NR] }'; }

echo "flowrun compare: inbound flow, stub server on 127.0.0.1, $(nproc) cores"
echo "  baseline: $base_bin ($base_dir/flows/inbound.yaml)"
echo "  this:     $bin (flows/inbound.yaml)"
for spec in "1000 1" "10000 64"; do
  set -- $spec
  make_input "$1"
  base=() this=()
  for _ in 1 2 3 4 5; do
    (cd "$base_dir" && "$base_bin" run flows/inbound.yaml --inputs-jsonl "$work/$1.jsonl" --concurrency "$2" > "$work/out")
    base+=("$(rps)")
    "$bin" run flows/inbound.yaml --inputs-jsonl "$work/$1.jsonl" --concurrency "$2" > "$work/out"
    this+=("$(rps)")
  done
  printf '  %6d runs, concurrency %2d requests/s:  baseline %s   this %s\n' "$1" "$2" \
    "$(median_best "${base[@]}")" "$(median_best "${this[@]}")"
done
