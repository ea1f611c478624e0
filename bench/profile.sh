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
port=18791
target/profile/release/examples/stub "$port" > /dev/null &
stub=$!
work=$(mktemp -d)
trap 'kill $stub 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do
  (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
export SCRT_BASE_URL="http://127.0.0.1:$port" SF_ORG_ID=00D000000000001
export SF_AUTHORIZATION_CONTEXT=Partner_Channel SF_ACCESS_TOKEN='00D000000000001!bench'
line='{"channel_address":"+15550100","end_user":"+15550123","queue_id":"00G5g000000SimQ","agent_user_id":"0055g000000SimA"}'
awk -v l="$line" 'BEGIN { for (i = 0; i < 10000; i++) print l }' > "$work/in.jsonl"
perf record -q -F 4000 -g -o "$work/perf.data" \
  "$bin" run flows/inbound.yaml --inputs-jsonl "$work/in.jsonl" --concurrency 64 --quiet
perf script -i "$work/perf.data" -F comm,tid,ip,sym 2> /dev/null > "$work/stacks.txt"
echo "share of the runner's CPU samples, 10,000 inbound runs at concurrency 64:"
python3 bench/profile_categories.py "$work/stacks.txt"
