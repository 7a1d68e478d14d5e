# Sourced by scripts/bench-memory.sh, bench-list.sh and bench-submit.sh (not run on its own):
# builds the release binaries and starts a scheduler (rate limits off, loopback on
# $BENCH_PORT and the port after it), one org `queue` capped at one device so that its
# jobs stay pending, and 100 simulated agents (800 sim-gpu devices) heartbeating in the
# background. Sets bin, server, http, pid (the scheduler's), queue (the org's user token)
# and BERTH_TOKEN (the admin's); everything is stopped and removed on exit.
# BENCH_DB=postgres runs it on PostgreSQL (BERTH_BENCH_POSTGRES_URL, or a fresh
# `berth_bench` database on the cluster scripts/postgres.sh starts), as scripts/bench.sh.
# BENCH_SCHEDULER runs another scheduler binary (an older build, to compare in the same
# session), and the array sched_args, when the sourcing script sets it, adds flags.
cargo build --release -q -p berth-scheduler -p berth-bench -p berth-cli
bin=target/release
data=$(mktemp -d)
grpc=127.0.0.1:${BENCH_PORT}
http=127.0.0.1:$((BENCH_PORT + 1))
server=http://$grpc
bench_db=${BENCH_DB:-sqlite}
# shellcheck source=scripts/bench-db.sh
source scripts/bench-db.sh
"${BENCH_SCHEDULER:-$bin/berth-scheduler}" --dev --data-dir "$data" --grpc-addr "$grpc" --http-addr "$http" \
  --web-addr 127.0.0.1:0 --bootstrap-admin-token-file "$data/admin.token" \
  --org-rate 0 --node-rate 0 --log warn "${db_args[@]}" ${sched_args[@]+"${sched_args[@]}"} >"$data/scheduler.log" 2>&1 &
pid=$!
background_pid=
cleanup() {
  [ -n "$background_pid" ] && kill "$background_pid" 2>/dev/null
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
background_pid=$!
sleep 3
