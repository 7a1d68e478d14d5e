#!/usr/bin/env bash
# Resident memory per pending job, on its own (docs/benchmarks.md):
#
#   scripts/bench-memory.sh [JOBS]      # default 100000, on embedded SQLite
#
# A release scheduler (rate limits off, loopback), 100 simulated agents (800 sim-gpu
# devices) heartbeating, one org capped at one device so that its jobs stay pending, and
# JOBS SubmitJob calls over 16 connections (berth-bench). Prints the scheduler's VmRSS
# empty, 2 s after the last submit (a pass over the queue may still be running) and 12 s
# after (passes settled, freed pages given back), and the heap-trim and pass metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-100000}
cargo build --release -q -p berth-scheduler -p berth-bench -p berth-cli
bin=target/release
data=$(mktemp -d)
grpc=127.0.0.1:${BENCH_PORT:-17470}
http=127.0.0.1:$((${BENCH_PORT:-17470} + 1))
server=http://$grpc
"$bin/berth-scheduler" --dev --data-dir "$data" --grpc-addr "$grpc" --http-addr "$http" \
  --web-addr 127.0.0.1:0 --bootstrap-admin-token-file "$data/admin.token" \
  --org-rate 0 --node-rate 0 --log warn >"$data/scheduler.log" 2>&1 &
pid=$!
agents=
cleanup() {
  [ -n "$agents" ] && kill "$agents" 2>/dev/null
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 300); do curl -sf "http://$http/readyz" >/dev/null && break; sleep 0.1; done
export BERTH_TOKEN
BERTH_TOKEN=$(cat "$data/admin.token")
berth() { "$bin/berth" --server "$server" "$@"; }
berth admin sites create busan >/dev/null
berth admin classes create sim-gpu --vendor sim >/dev/null
berth admin orgs create queue >/dev/null
berth admin budgets set --org queue --class '*' --hours 1000000 --max-devices 1 >/dev/null
queue=$(berth admin users create --org queue --name q -o json | jq -r .token)
"$bin/berth-bench" --server "$server" --token "$BERTH_TOKEN" heartbeat --count 100 \
  --interval 5s --duration 3600s --connections 4 >/dev/null 2>&1 &
agents=$!
sleep 3
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
empty=$(rss)
"$bin/berth-bench" --server "$server" --token "$queue" --pid "$pid" --count "$jobs" submit
sleep 2
at2=$(rss)
sleep 10
at12=$(rss)
echo "VmRSS: $((empty / 1024)) MiB empty; with $jobs pending jobs $((at2 / 1024)) MiB 2 s after" \
  "the last submit, $((at12 / 1024)) MiB 12 s after: $(((at12 - empty) * 1024 / jobs)) bytes per" \
  "pending job."
curl -s "http://$http/metrics" |
  grep -E '^berth_(heap_trim_seconds|scheduling_pass_seconds)_(sum|count)|^berth_queue_plans_total'
