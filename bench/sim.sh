#!/usr/bin/env bash
# Benchmark: the simulator's throughput under a load tool on loopback.
#
#   bash bench/sim.sh [SECONDS] [CONNECTIONS]
#
# Starts `flowrun sim` on 127.0.0.1, then wrk (from Debian; installed here if missing) sends
# PATCH /api/v1/consent — full header checks, rules and a state update per request — for
# SECONDS (default 10) over CONNECTIONS (default 32) connections, and prints wrk's figures.
# Target: at least 20,000 requests/s, so the simulator never limits a load test.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-32}
if ! command -v wrk > /dev/null; then
  (apt-get update -qq && apt-get install -y -qq wrk) > /dev/null
fi
cargo build --release --quiet
port=18788
target/release/flowrun sim --port "$port" > /dev/null &
sim=$!
trap 'kill $sim 2>/dev/null' EXIT
for _ in $(seq 1 50); do
  curl -s -o /dev/null "http://127.0.0.1:$port/sim/state" && break
  sleep 0.1
done
script=$(mktemp --suffix=.lua)
cat > "$script" <<'LUA'
wrk.method = "PATCH"
wrk.path = "/api/v1/consent"
wrk.headers["Authorization"] = "Bearer 00D000000000001!sim-access-token"
wrk.headers["OrgId"] = "00D000000000001"
wrk.headers["AuthorizationContext"] = "Partner_Channel"
wrk.headers["RequestId"] = "5e550000-0000-4000-8000-00000000aaaa"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"endUserClientId":"+15550999","channelAddressIdentifier":"+15550100","consentStatus":"ExplicitlyOptedIn"}'
LUA
echo "flowrun sim: PATCH /api/v1/consent, $connections connections, $seconds s, $(nproc) cores shared with wrk"
wrk -t2 -c"$connections" -d"${seconds}s" -s "$script" "http://127.0.0.1:$port"
rm -f "$script"
# Every answer must have been a 200: a rule failing under load would show as non-2xx.
