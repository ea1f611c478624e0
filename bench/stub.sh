# Sourced by the bench scripts: starts the stub server built in $target on $port, points the
# inbound flow's environment at it, and defines `make_input N` (N input lines in $work/N.jsonl).
# The stub and $work are removed when the script exits.
target/$target/release/examples/stub "$port" > /dev/null &
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
make_input() { awk -v n="$1" -v l="$line" 'BEGIN { for (i = 0; i < n; i++) print l }' > "$work/$1.jsonl"; }
