#!/usr/bin/env bash
# SubmitJob on its own, with a queue already pending (docs/benchmarks.md):
#
#   scripts/bench-submit.sh [PENDING] [JOBS]    # defaults 10000 and 10000, embedded SQLite
#   BENCH_DB=postgres scripts/bench-submit.sh   # on PostgreSQL
#   BENCH_CONNS=32 scripts/bench-submit.sh      # over 32 connections (default 16)
#   BENCH_PER_CONN=2 scripts/bench-submit.sh    # two calls in flight on each (default 1)
#
# The centre of scripts/bench-queue-centre.sh (100 simulated agents heartbeating, one org
# capped at one device so that its jobs stay pending); PENDING submits first, then JOBS
# SubmitJob calls over 16 connections (BENCH_CONNS), one call in flight on each
# (BENCH_PER_CONN), measured by berth-bench. Prints berth-bench's line
# and what the group-commit writer did meanwhile: groups, batches per group, ms per group
# and the share of the run it was busy committing.
set -euo pipefail
cd "$(dirname "$0")/.."
pending=${1:-10000}
jobs=${2:-10000}
BENCH_PORT=${BENCH_PORT:-17570}
# shellcheck source=scripts/bench-queue-centre.sh
source scripts/bench-queue-centre.sh
groups() {
  curl -s "http://$http/metrics" |
    awk '/^berth_commit_group_batches_(sum|count)|^berth_commit_group_seconds_sum/ {printf "%s ", $2}'
}
"$bin/berth-bench" --server "$server" --token "$queue" --count "$pending" submit >/dev/null
sleep 2
read -r b0 n0 s0 <<<"$(groups)"
started=$(date +%s.%N)
"$bin/berth-bench" --server "$server" --token "$queue" --pid "$pid" --count "$jobs" ${BENCH_CONNS:+--connections $BENCH_CONNS} \
  ${BENCH_PER_CONN:+--per-connection $BENCH_PER_CONN} submit
ended=$(date +%s.%N)
read -r b1 n1 s1 <<<"$(groups)"
awk -v b0="$b0" -v b1="$b1" -v n0="$n0" -v n1="$n1" -v s0="$s0" -v s1="$s1" \
  -v t0="$started" -v t1="$ended" 'BEGIN {
    n = n1 - n0; s = s1 - s0; wall = t1 - t0
    printf "commit groups: %d, %.1f batches each, %.2f ms each, writer busy %.0f%% of %.1f s\n",
      n, (b1 - b0) / n, 1000 * s / n, 100 * s / wall, wall }'
