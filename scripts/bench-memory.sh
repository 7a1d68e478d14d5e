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
BENCH_PORT=${BENCH_PORT:-17470}
# shellcheck source=scripts/bench-queue-centre.sh
source scripts/bench-queue-centre.sh
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
