#!/usr/bin/env bash
# The throughput benchmarks of docs/benchmarks.md, end to end, on one database:
#
#   scripts/bench.sh sqlite            # embedded SQLite (the default centre)
#   scripts/bench.sh postgres          # PostgreSQL (BERTH_BENCH_POSTGRES_URL, or the
#                                      # local cluster through scripts/postgres.sh)
#
# A release scheduler with per-tenant rate limits off (--org-rate 0: the load comes from
# one organisation) on loopback, driven by berth-bench and the berth CLI over real gRPC.
# Phases: agents heartbeating, 10k jobs queued, SubmitJob with 10k pending (one call in
# flight on each connection, then two), bookings with 30k pending, queue grown to 100k
# (memory per pending job), ListJobs pages and `berth jobs`, `berth reserve --count 8`
# through the CLI, GetJob while passes run back to back (at 10k and at 100k pending), and
# 10,000 agents heartbeating every 5 s. Each phase's JSON goes to $OUT (default
# target/bench/<db>), and a summary table is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

db=${1:-sqlite}
case "$db" in sqlite | postgres) ;; *)
  echo "usage: scripts/bench.sh sqlite|postgres" >&2
  exit 2
  ;;
esac
out=${OUT:-target/bench/$db}
agents=${AGENTS:-10000}
rm -rf "$out" && mkdir -p "$out"

echo "== building (release)" >&2
cargo build --release -q -p berth-scheduler -p berth-bench -p berth-cli
bin=target/release
data=$(mktemp -d)
grpc=127.0.0.1:${BENCH_PORT:-17370}
http=127.0.0.1:$((${BENCH_PORT:-17370} + 1))
server=http://$grpc
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; fi
  rm -rf "$data"
}
trap cleanup EXIT

bench_db=$db
# shellcheck source=scripts/bench-db.sh
source scripts/bench-db.sh

start() { # extra scheduler flags
  "$bin/berth-scheduler" --dev --data-dir "$data" --grpc-addr "$grpc" --http-addr "$http" --web-addr 127.0.0.1:0 \
    --bootstrap-admin-token-file "$data/admin.token" \
    --org-rate 0 --node-rate 0 --log warn "${db_args[@]}" "$@" >>"$out/scheduler.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    curl -sf "http://$http/readyz" >/dev/null && return
    sleep 0.1
  done
  echo "the scheduler did not become ready; its log:" >&2
  tail -30 "$out/scheduler.log" >&2
  exit 1
}
stop() {
  kill "$pid" && wait "$pid" || true
  pid=
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
bench() { # name, berth-bench arguments...
  local name=$1
  shift
  echo "== $name" >&2
  "$bin/berth-bench" --server "$server" --pid "$pid" -o json "$@" >"$out/$name.json"
  jq -c '{op, ok, errors, rate, p50_ms, p99_ms, max_ms, server_cpu_percent, bench_cpu_percent}' "$out/$name.json" >&2
}
berth() { "$bin/berth" --server "$server" "$@"; }
# Wall time of a command, milliseconds, best of N runs and the median, as JSON.
wall() { # name, runs, command...
  local name=$1 runs=$2
  shift 2
  local times=()
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || { echo "$name failed: $*" >&2; "$@" >/dev/null; }
    t1=$(date +%s%N)
    times+=($(((t1 - t0) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | jq -s --arg op "$name" \
    '{op: $op, runs: length, min_ms: (.[0] / 1000), median_ms: (.[length / 2 | floor] / 1000), max_ms: (.[-1] / 1000)}' \
    >"$out/$name.json"
  jq -c . "$out/$name.json" >&2
}

start
admin=$(cat "$data/admin.token")
export BERTH_TOKEN=$admin
berth admin sites create busan >/dev/null
berth admin classes create sim-gpu --vendor sim >/dev/null
berth admin orgs create queue >/dev/null
berth admin orgs create book >/dev/null
# One device at a time for the queueing org, so its jobs stay pending.
berth admin budgets set --org queue --class '*' --hours 1000000 --max-devices 1 >/dev/null
queue=$(berth admin users create --org queue --name q -o json | jq -r .token)
book=$(berth admin users create --org book --name b -o json | jq -r .token)
echo "{\"rss_kib\": $(rss_kib)}" >"$out/rss-empty.json"

# 100 agents (800 devices) keep their nodes ready throughout, so bookings find devices.
"$bin/berth-bench" --server "$server" --token "$admin" -o json heartbeat --count 100 \
  --interval 5s --duration 3600s --connections 4 >"$out/background-agents.json" 2>/dev/null &
background=$!
trap 'kill $background 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 600); do
  [ "$(berth nodes -o json | jq length)" -ge 100 ] && break
  sleep 0.1
done

# GetJob while passes over the whole pending queue run back to back (--tick 1ms). A queue
# that did not change is not planned again, so a slow trickle of submits (one connection)
# changes it all the while: each pass plans every pending job.
passes() { curl -s "http://$http/metrics" | awk '/^berth_scheduling_pass_seconds_count/ {print $2}'; }
get_during_passes() { # name
  stop
  start --tick 1ms
  "$bin/berth-bench" --server "$server" --token "$queue" --connections 1 --count 1000000 \
    submit >/dev/null 2>&1 &
  local trickle=$! p0 p1
  p0=$(passes)
  bench "$1" --token "$queue" --count 20000 get
  p1=$(passes)
  kill "$trickle" 2>/dev/null || true
  wait "$trickle" 2>/dev/null || true
  echo "{\"passes\": $((p1 - p0))}" >"$out/passes-during-$1.json"
  stop
  start
}

bench submit-empty --token "$queue" --count 10000 submit
get_during_passes get-during-passes-10k
bench submit-10k-pending --token "$queue" --count 10000 submit
# The same with two calls in flight on each of the 16 connections: what the scheduler
# takes in when its clients do not wait for one answer before the next question.
bench submit-20k-pending-2-in-flight --token "$queue" --count 10000 --per-connection 2 submit
bench reserve-30k-pending --token "$book" --count 10000 reserve
# Resident memory before the queue grows by 70k jobs (after its passes settle, as below):
# what those jobs add, over what they add to.
sleep 7
echo "{\"rss_kib\": $(rss_kib), \"pending\": $(berth jobs --state pending --limit 1000000 -o json | jq length)}" >"$out/rss-before-70k.json"
bench submit-grow-to-100k --token "$queue" --count 70000 submit
# Resident memory once the passes over the new jobs have settled: the last one has run
# and the heap's freed pages have been given back (at most 5 s after it).
sleep 7
echo "{\"rss_kib\": $(rss_kib)}" >"$out/rss-100k.json"
bench list-100k --token "$queue" --count 2000 list --page-size 500
wall berth-jobs-100k 21 env BERTH_TOKEN="$queue" "$bin/berth" --server "$server" jobs
wall berth-reserve-count-8 21 env BERTH_TOKEN="$book" "$bin/berth" --server "$server" \
  reserve --class sim-gpu --count 8 --start +30d --duration 1h
kill "$background" 2>/dev/null || true
get_during_passes get-during-passes-100k

bench heartbeat-$agents-agents --token "$admin" --count "$agents" heartbeat --interval 5s \
  --duration 60s --connections 16
stop

echo "== summary ($db)" >&2
{
  echo "| phase | ok | errors | rate/s | p50 ms | p99 ms | max ms | server CPU % | berth-bench CPU % |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for f in submit-empty get-during-passes-10k submit-10k-pending submit-20k-pending-2-in-flight \
    reserve-30k-pending \
    submit-grow-to-100k list-100k get-during-passes-100k "heartbeat-$agents-agents"; do
    jq -r '"| \(.op) (\(input_filename | split("/")[-1] | rtrimstr(".json"))) | \(.ok) | \(.errors) | \(.rate | floor) | \(.p50_ms) | \(.p99_ms) | \(.max_ms) | \(.server_cpu_percent // "-") | \(.bench_cpu_percent // "-") |"' "$out/$f.json"
  done
  for f in berth-jobs-100k berth-reserve-count-8; do
    jq -r '"| \(.op): wall of \(.runs) runs | | | | median \(.median_ms) | min \(.min_ms) | max \(.max_ms) | |"' "$out/$f.json"
  done
  empty=$(jq .rss_kib "$out/rss-empty.json")
  full=$(jq .rss_kib "$out/rss-100k.json")
  echo
  before=$(jq .rss_kib "$out/rss-before-70k.json")
  pending=$(jq .pending "$out/rss-before-70k.json")
  echo "Resident memory: $((empty / 1024)) MiB empty, $((full / 1024)) MiB with 100k pending jobs:" \
    "$(((full - empty) * 1024 / 100000)) bytes per pending job over the empty scheduler" \
    "(with its 10k bookings); $((before / 1024)) MiB at $pending pending:" \
    "$(((full - before) * 1024 / (100000 - pending))) bytes per job of the last $((100000 - pending))."
  echo "Passes during get-during-passes: $(jq .passes "$out/passes-during-get-during-passes-10k.json")" \
    "at 10k pending, $(jq .passes "$out/passes-during-get-during-passes-100k.json") at 100k."
} | tee "$out/summary.md"
