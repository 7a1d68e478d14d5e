#!/usr/bin/env bash
# GetJob while passes over the whole pending queue run back to back (docs/benchmarks.md):
#
#   scripts/bench-get.sh [PENDING] [CALLS]    # defaults 10000 and 20000, embedded SQLite
#   BENCH_DB=postgres scripts/bench-get.sh    # on PostgreSQL
#
# The centre of scripts/bench-queue-centre.sh with passes back to back (--tick 1ms);
# PENDING submits first, then a one-connection trickle of submits (a queue that did not
# change is not planned again: the trickle changes it all the while, so each pass plans
# every pending job) beside CALLS GetJob calls over 16 connections measured by
# berth-bench. Prints berth-bench's line and the passes that ran meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
pending=${1:-10000}
calls=${2:-20000}
BENCH_PORT=${BENCH_PORT:-17670}
sched_args=(--tick 1ms)
# shellcheck source=scripts/bench-queue-centre.sh
source scripts/bench-queue-centre.sh
passes() {
  curl -s "http://$http/metrics" |
    awk '/^berth_scheduling_pass_seconds_(sum|count)/ {printf "%s ", $2}'
}
"$bin/berth-bench" --server "$server" --token "$queue" --count "$pending" submit >/dev/null
"$bin/berth-bench" --server "$server" --token "$queue" --connections 1 --count 1000000 \
  submit >/dev/null 2>&1 &
trickle=$!
read -r s0 n0 <<<"$(passes)"
"$bin/berth-bench" --server "$server" --token "$queue" --pid "$pid" --count "$calls" get
read -r s1 n1 <<<"$(passes)"
kill "$trickle" 2>/dev/null || true
wait "$trickle" 2>/dev/null || true
awk -v n0="$n0" -v n1="$n1" -v s0="$s0" -v s1="$s1" 'BEGIN {
  printf "passes meanwhile: %d, %.1f ms each\n", n1 - n0, 1000 * (s1 - s0) / (n1 - n0) }'
