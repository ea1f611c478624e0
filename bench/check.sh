#!/usr/bin/env bash
# Benchmark: check 1,000 flow files in one `flowrun check` run and print the time.
# Target: under 1 s on the project's 2-core machine.
#
#   bash bench/check.sh [COUNT]
#
# The files are copies of the shipped flows (half inbound, half transfer), each with its own
# name, so the run does the full work for every file: read, load (with the connection file
# each one uses), schema, analysis.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-1000}
cargo build --release --quiet
bin=target/release/flowrun
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/connections"
cp flows/connections/salesforce.yaml "$dir/connections/"
for i in $(seq 1 "$count"); do
  if (( i % 2 )); then src=flows/inbound.yaml; else src=flows/transfer.yaml; fi
  sed "s/^name: .*/name: flow_$i/" "$src" > "$dir/flow_$i.yaml"
done
# One warm-up run so the file cache is not what is measured.
"$bin" check "$dir" > /dev/null
runs=5
best=""
for _ in $(seq 1 $runs); do
  start=$(date +%s%N)
  "$bin" check "$dir" > /dev/null
  end=$(date +%s%N)
  ms=$(( (end - start) / 1000000 ))
  if [[ -z "$best" || $ms -lt $best ]]; then best=$ms; fi
done
echo "flowrun check: $count flow files in ${best} ms (best of $runs runs, $(nproc) cores)"
echo "per file: $(( best * 1000 / count )) µs"
