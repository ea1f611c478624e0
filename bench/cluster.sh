#!/usr/bin/env bash
# Benchmark: one, two and three `flowrun serve` instances sharing a PostgreSQL journal, each
# event's run queued there and claimed by whichever instance has room, against the simulator's
# Pub/Sub API (real gRPC on 127.0.0.1); the shipped transfer flow, target outside the org (one
# routing result per event).
#
#   bash bench/cluster.sh [EVENTS]      (default 10000)
#   SYNC=off bash bench/cluster.sh      (PostgreSQL with synchronous_commit=off)
#
# Prints, side by side in the same run:
#   1. the baseline: one instance on the embedded SQLite journal (runs not queued): events/s
#      for a backlog of EVENTS published at once;
#   2. the same backlog with 1, 2 and 3 instances on PostgreSQL (a fresh database each): events/s
#      and how the runs spread (runs claimed by each instance);
#   3. takeover: the three instances, the one holding the subscription killed (-9): the time
#      until another subscribes, and until the killed one's runs (leased) have all ended.
# PostgreSQL is a throwaway cluster in a temp directory (Debian's package), with its default
# durability (fsync on, synchronous_commit on: each commit waits for the disk), or with
# SYNC=off synchronous_commit=off (a commit survives flowrun's crash but not the server's,
# as the SQLite journal's synchronous=NORMAL survives flowrun's but not a power cut).
# Everything shares this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-10000}
cargo build --release --quiet --bin flowrun
bin=$PWD/target/release/flowrun
work=$(mktemp -d)
chmod 755 "$work"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
now() { date +%s%N; }
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" && return 0; sleep 0.1; done; echo "no '$2' in $1"; cat "$1"; exit 1; }

mkdir "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg" -A trust -U flowrun -E UTF8 > /dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg/server.log" -w \
  -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work/pg -c synchronous_commit=${SYNC:-on}" start > /dev/null
psql() { "$pgbin/psql" -h 127.0.0.1 -p "$port" -U flowrun -At "$@"; }

"$bin" sim --port 0 --config bench/serve.sim.yaml > "$work/sim.out" 2>&1 &
wait_for "$work/sim.out" "State: GET"
eval "$(sed -n 's/^ *export /export /p' "$work/sim.out")"
sim=${SCRT_BASE_URL#http://}
echo "flowrun serve, several instances: transfer flow (external target), $events events at once, simulator and PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on 127.0.0.1 (synchronous_commit=${SYNC:-on}), $(nproc) cores"

# start N JOURNAL: N instances; their addresses in $work/addrs, their pids in $work/pids.
start() {
  : > "$work/addrs"; : > "$work/pids"
  for i in $(seq 1 "$1"); do
    "$bin" serve flows/transfer.service.yaml --journal "$2" --listen 127.0.0.1:0 --max-runs 64 \
      > "$work/serve$i.out" 2>&1 &
    echo $! >> "$work/pids"
    wait_for "$work/serve$i.out" "serving on"
    sed -n 's/.*serving on http:\/\///p' "$work/serve$i.out" | head -1 >> "$work/addrs"
  done
  for _ in $(seq 1 200); do cat "$work"/serve*.out | grep -q "info subscribed" && return 0; sleep 0.05; done
  echo "nobody subscribed"; exit 1
}
stop() { kill -TERM $(cat "$work/pids") 2>/dev/null || true; for p in $(cat "$work/pids"); do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done; rm -f "$work"/serve*.out; }
metric() { # the sum of METRIC over the instances still up
  for a in $(cat "$work/addrs"); do curl -s -m 1 "http://$a/metrics" || true; done |
    awk -v m="$1" '$1 ~ "^"m { n += $2 } END { print n + 0 }'
}
ended() { metric flowrun_runs_total; }
backlog() { # publish $events at once; ms until they have all ended
  local t0; t0=$(now)
  curl -s -X POST "http://$sim/sim/transfer" -d "{\"target\":\"external\",\"count\":$events}" > /dev/null
  until [ "$(ended)" -ge "$events" ]; do sleep 0.05; done
  echo $(( ($(now) - t0) / 1000000 ))
}
spread() { for a in $(cat "$work/addrs"); do curl -s "http://$a/metrics" | awk '/^flowrun_runs_claimed_total/ { printf " %d", $2 }'; done; }

start 1 "sqlite:$work/baseline.db"
ms=$(backlog)
stop
printf '  baseline, 1 instance, SQLite journal:  %6d events/s  (%d ms)\n' $(( events * 1000 / ms )) "$ms"

for n in 1 2 3; do
  psql -d postgres -c "CREATE DATABASE bench$n" > /dev/null
  start "$n" "postgres://flowrun@127.0.0.1:$port/bench$n"
  ms=$(backlog)
  printf '  %d instance(s), PostgreSQL journal:     %6d events/s  (%d ms)   runs claimed by each:%s\n' \
    "$n" $(( events * 1000 / ms )) "$ms" "$(spread)"
  [ "$n" = 3 ] || stop
done

# Takeover: kill the leader of the three mid-backlog.
leader=""
i=0
for p in $(cat "$work/pids"); do
  i=$((i + 1))
  grep -q "info subscribed" "$work/serve$i.out" && leader=$i
done
lpid=$(sed -n "${leader}p" "$work/pids")
ltag=$(psql -d bench3 -c "SELECT value FROM cursors WHERE name LIKE 'leader:%'")
curl -s -X POST "http://$sim/sim/transfer" -d "{\"target\":\"external\",\"count\":$events}" > /dev/null
sleep 0.5
held=$(psql -d bench3 -c "SELECT count(*) FROM runs WHERE owner = '$ltag' AND status = 'running'")
kill -9 "$lpid"
t0=$(now)
others=()
for j in 1 2 3; do [ "$j" = "$leader" ] || others+=("$work/serve$j.out"); done
until grep -q "info subscribed" "${others[@]}"; do sleep 0.01; done
sub=$(( ($(now) - t0) / 1000000 ))
until [ "$(psql -d bench3 -c "SELECT count(*) FROM runs WHERE owner = '$ltag' AND status = 'running'")" = 0 ]; do sleep 0.05; done
resumed=$(( ($(now) - t0) / 1000000 ))
until [ "$(psql -d bench3 -c "SELECT count(*) FROM runs WHERE status NOT IN ('queued', 'running')")" = $(( 2 * events )) ]; do sleep 0.1; done
all=$(( ($(now) - t0) / 1000000 ))
total=$(psql -d bench3 -c "SELECT count(*) FROM runs")
printf '  takeover, leader killed (-9) with %d runs in flight: subscribed elsewhere after %d ms; its runs claimed by the others after %d ms; the backlog after %d ms (%d runs in the journal, %d expected)\n' \
  "$held" "$sub" "$resumed" "$all" "$total" $(( 2 * events ))
