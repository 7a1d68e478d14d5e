#!/usr/bin/env bash
# Starts the Debian PostgreSQL cluster (installing it when missing and running as root)
# and makes sure the test role and database exist. Prints the test database URL.
#   eval "$(scripts/postgres.sh)"   # exports BERTH_TEST_POSTGRES_URL
set -euo pipefail

url="postgres://berth:berth@127.0.0.1:5432/berth_test"
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "installing PostgreSQL from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql postgresql-contrib >&2
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
  pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | grep -q "^$version *main .* online"; then
  pg_ctlcluster "$version" main start >&2
fi
for _ in $(seq 1 50); do
  as_postgres psql -qAtc 'select 1' >/dev/null 2>&1 && break
  sleep 0.2
done
# The tests create a database each (and btree_gist), so the role may create both.
as_postgres psql -qAtc "select 1 from pg_roles where rolname = 'berth'" | grep -q 1 ||
  as_postgres psql -qc "create role berth login superuser password 'berth'" >&2
as_postgres psql -qAtc "select 1 from pg_database where datname = 'berth_test'" | grep -q 1 ||
  as_postgres psql -qc "create database berth_test owner berth" >&2
echo "export BERTH_TEST_POSTGRES_URL=$url"
