#!/usr/bin/env bash
# Per-tenant rate limits, measured (docs/reliability.md, "Per-tenant rate limits").
#
#   scripts/bench-tenants.sh
#
# Org `calm` calls ListJobs, then SubmitJob, at a steady 25 per second (4 connections),
# first alone and then while org `flood` sends ListJobs back to back over 32 connections:
# pages of 100 of its 1,000 jobs of 16 KiB each, 1.6 MB per answer (the listing
# amplification of issue 12). Once for each setting of the per-org limit: off
# (--org-rate 0), the default (500/s, burst 1000) and tight (50/s, burst 100). A release
# scheduler on SQLite on loopback; two simulated agents keep 16 devices ready. Each run's
# JSON goes to $OUT (default target/bench/tenants), and a table is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OUT:-target/bench/tenants}
rm -rf "$out" && mkdir -p "$out"
echo "== building (release)" >&2
cargo build --release -q -p berth-scheduler -p berth-bench -p berth-cli
bin=target/release
grpc=127.0.0.1:${BENCH_PORT:-17470}
http=127.0.0.1:$((${BENCH_PORT:-17470} + 1))
server=http://$grpc
pid=
data=
background=()
cleanup() {
  for p in "${background[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "$data" ] && rm -rf "$data"
  return 0
}
trap cleanup EXIT

start() { # scheduler flags...
  data=$(mktemp -d)
  "$bin/berth-scheduler" --dev --data-dir "$data" --grpc-addr "$grpc" --http-addr "$http" \
    --bootstrap-admin-token-file "$data/admin.token" --log warn "$@" >>"$out/scheduler.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    curl -sf "http://$http/readyz" >/dev/null && return
    sleep 0.1
  done
  echo "the scheduler did not become ready; its log:" >&2
  tail -30 "$out/scheduler.log" >&2
  exit 1
}
berth() { "$bin/berth" --server "$server" "$@"; }
bench() { # file, berth-bench arguments... (refusals make it exit 1: they are counted)
  local file=$1
  shift
  "$bin/berth-bench" --server "$server" -o json "$@" >"$file" || true
}

run() { # setting name, scheduler flags...
  local name=$1
  shift
  echo "== $name" >&2
  start "$@"
  local admin flood calm
  admin=$(cat "$data/admin.token")
  export BERTH_TOKEN=$admin
  berth admin sites create busan >/dev/null
  berth admin classes create sim-gpu --vendor sim >/dev/null
  berth admin orgs create flood >/dev/null
  berth admin orgs create calm >/dev/null
  flood=$(berth admin users create --org flood --name f -o json | jq -r .token)
  calm=$(berth admin users create --org calm --name c -o json | jq -r .token)
  "$bin/berth-bench" --server "$server" --token "$admin" -o json heartbeat --count 2 \
    --interval 5s --duration 3600s --connections 1 >/dev/null 2>&1 &
  background+=($!)
  for _ in $(seq 300); do
    [ "$(berth nodes -o json | jq length)" -ge 2 ] && break
    sleep 0.1
  done
  # Stored jobs: the flood org's heavy ones, and a few of the calm org's own. Paced
  # below the tight limit, so that every setting stores the same.
  bench "$out/$name-setup-flood.json" --token "$flood" --connections 4 --count 1000 \
    --rate 45 submit --env-bytes 16384
  bench "$out/$name-setup-calm.json" --token "$calm" --connections 1 --count 20 submit

  local calm_list=(--token "$calm" --connections 4 --rate 25 --count 250 list --page-size 500)
  local calm_submit=(--token "$calm" --connections 4 --rate 25 --count 250 submit)
  local flood_list=(--token "$flood" --connections 32 --per-connection 2 --count 100000000
    --time-limit 14s list --page-size 100)

  bench "$out/$name-list-alone.json" "${calm_list[@]}"
  bench "$out/$name-flood-during-list.json" "${flood_list[@]}" &
  local f=$!
  sleep 2
  bench "$out/$name-list-flooded.json" "${calm_list[@]}"
  wait "$f"

  bench "$out/$name-submit-alone.json" "${calm_submit[@]}"
  bench "$out/$name-flood-during-submit.json" "${flood_list[@]}" &
  f=$!
  sleep 2
  bench "$out/$name-submit-flooded.json" "${calm_submit[@]}"
  wait "$f"

  for p in "${background[@]}"; do kill "$p" 2>/dev/null || true; done
  background=()
  kill "$pid" && wait "$pid" || true
  pid=
  rm -rf "$data"
  data=
}

run off --org-rate 0
run default
run tight --org-rate 50 --org-burst 100

printf '%-8s %-22s %7s %7s %9s %9s %9s\n' limit run ok refused rate/s "p50 ms" "p99 ms"
for name in off default tight; do
  for phase in list-alone list-flooded flood-during-list submit-alone submit-flooded \
    flood-during-submit; do
    jq -r --arg n "$name" --arg p "$phase" \
      '[$n, $p, .ok, .errors, (.rate | floor), (.p50_ms * 100 | round / 100),
        (.p99_ms * 100 | round / 100)] | @tsv' "$out/$name-$phase.json" |
      awk -F'\t' '{printf "%-8s %-22s %7s %7s %9s %9s %9s\n", $1, $2, $3, $4, $5, $6, $7}'
  done
done
