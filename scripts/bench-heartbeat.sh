#!/usr/bin/env bash
# Heartbeats on their own (docs/benchmarks.md):
#
#   scripts/bench-heartbeat.sh [AGENTS] [PENDING]   # defaults 10000 and 0, embedded SQLite
#   BENCH_DB=postgres scripts/bench-heartbeat.sh    # on PostgreSQL
#   scripts/bench-heartbeat.sh 10000 0 --calls      # more berth-bench heartbeat flags
#
# The centre of scripts/bench-queue-centre.sh; PENDING submits first (jobs that stay
# pending), then AGENTS simulated agents of 8 devices join over 16 connections, each
# heartbeating every 5 s from the moment it has joined (as agents do); one interval after
# the last has joined, berth-bench measures 60 s of heartbeats (latency, and the
# scheduler's CPU over the minute). Prints berth-bench's line.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-10000}
pending=${2:-0}
BENCH_PORT=${BENCH_PORT:-17770}
# shellcheck source=scripts/bench-queue-centre.sh
source scripts/bench-queue-centre.sh
if [ "$pending" -gt 0 ]; then
  "$bin/berth-bench" --server "$server" --token "$queue" --count "$pending" submit >/dev/null
fi
"$bin/berth-bench" --server "$server" --token "$BERTH_TOKEN" --pid "$pid" --count "$count" \
  heartbeat --interval 5s --duration 60s "${@:3}"
