#!/usr/bin/env bash
# Where a batch's time goes: builds flowrun with frame pointers (into target/profile), runs
# 10,000 inbound runs at concurrency 64 against the bench stub under `perf record`, and prints
# the share of CPU samples per part of a run (HTTP client, kernel send/receive, templates,
# JSON, body schema checks, step loop, ...).
#
#   bash bench/profile.sh
#
# Needs perf (Debian's linux-perf; installed here if missing) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v perf > /dev/null || { apt-get install -y -qq linux-perf > /dev/null; }
RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=target/profile \
  cargo build --release --quiet --bin flowrun --example stub
bin=target/profile/release/flowrun
port=18791 target=profile
source bench/stub.sh
make_input 10000
perf record -q -F 4000 -g -o "$work/perf.data" \
  "$bin" run flows/inbound.yaml --inputs-jsonl "$work/10000.jsonl" --concurrency 64 --quiet
perf script -i "$work/perf.data" -F comm,tid,ip,sym 2> /dev/null > "$work/stacks.txt"
echo "share of the runner's CPU samples, 10,000 inbound runs at concurrency 64:"
python3 bench/profile_categories.py "$work/stacks.txt"
