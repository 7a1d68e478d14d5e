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
BENCH_PORT=${BENCH_PORT:-17570}
# shellcheck source=scripts/bench-queue-centre.sh
source scripts/bench-queue-centre.sh
"$bin/berth-bench" --server "$server" --token "$queue" --pid "$pid" --count "$jobs" submit
# Let the passes over the new jobs settle.
sleep 8
for _ in 1 2 3; do
  "$bin/berth-bench" --server "$server" --token "$queue" --pid "$pid" --count 2000 \
    list --page-size 500 "$@"
done
