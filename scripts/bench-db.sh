# Sourced by the bench scripts (not run on its own): sets db_args, the scheduler's
# database flags for the database named in $bench_db. sqlite: none (the embedded
# default). postgres: BERTH_BENCH_POSTGRES_URL, or else a fresh `berth_bench` database on
# the local cluster that scripts/postgres.sh starts.
db_args=()
case "$bench_db" in
sqlite) ;;
postgres)
  if [ -z "${BERTH_BENCH_POSTGRES_URL:-}" ]; then
    eval "$(scripts/postgres.sh)"
    BERTH_BENCH_POSTGRES_URL=${BERTH_TEST_POSTGRES_URL%/*}/berth_bench
    psql "${BERTH_TEST_POSTGRES_URL}" -qc "DROP DATABASE IF EXISTS berth_bench" \
      -c "CREATE DATABASE berth_bench" >/dev/null
  fi
  db_args=(--database-url "$BERTH_BENCH_POSTGRES_URL")
  ;;
*)
  echo "unknown database \"$bench_db\": sqlite or postgres" >&2
  exit 2
  ;;
esac
