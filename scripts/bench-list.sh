#!/usr/bin/env bash
# ListJobs pages on their own (docs/benchmarks.md):
#
#   scripts/bench-list.sh [JOBS] [berth-bench list flags...]   # default 100000 jobs, SQLite
#
# A release scheduler (rate limits off, loopback), 100 simulated agents heartbeating, one
# org capped at one device so that its JOBS jobs stay pending, then three runs of 2,000
# `ListJobs` pages of 500 (`all: true`) over 16 connections, each with the scheduler's
# and berth-bench's CPU. Extra flags go to `berth-bench list` (e.g. --decode).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-100000}
shift || true
cargo build --release -q -p berth-scheduler -p berth-bench -p berth-cli
bin=target/release
data=$(mktemp -d)
grpc=127.0.0.1:${BENCH_PORT:-17570}
http=127.0.0.1:$((${BENCH_PORT:-17570} + 1))
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
"$bin/berth-bench" --server "$server" --token "$queue" --pid "$pid" --count "$jobs" submit
# Let the passes over the new jobs settle.
sleep 8
for _ in 1 2 3; do
  "$bin/berth-bench" --server "$server" --token "$queue" --pid "$pid" --count 2000 \
    list --page-size 500 "$@"
done
