#!/usr/bin/env bash
# The whole test suite: unit, property, storage (SQLite and PostgreSQL) and
# end-to-end tests (real binaries over real gRPC, on SQLite and on PostgreSQL; TLS with
# certificates made at test time), the light client's build, the alert rules' promtool
# tests, and the operations tests (Helm chart, container images, systemd units, docs) in
# tests/ops. The operations tools come from scripts/ops-tools.sh (apt) and
# scripts/venv.sh (.venv-ci from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${BERTH_TEST_POSTGRES_URL:-}" ]; then
  eval "$(scripts/postgres.sh)"
fi
export BERTH_TEST_POSTGRES_URL

if cargo nextest --version >/dev/null 2>&1; then
  run() { cargo nextest run --no-fail-fast "$@"; }
else
  run() { cargo test --no-fail-fast "$@"; }
fi

echo "== light client (berth without the local feature)" >&2
scripts/check-light-client.sh
echo "== all tests (end-to-end on SQLite)" >&2
run --workspace
echo "== end-to-end tests on PostgreSQL" >&2
BERTH_E2E_DB=postgres run -p berth-cli --test e2e --test scheduling --test crash --test portal

need() { command -v "$1" >/dev/null || { echo "test: $1 is missing: run scripts/ops-tools.sh (as root)" >&2; exit 1; }; }
echo "== alert rules (promtool test rules)" >&2
need promtool
promtool test rules helm/berth/rules/tests/*_test.yaml
echo "== operations: Helm chart, images, systemd units, docs (pytest, .venv-ci)" >&2
need systemd-analyze
need docker
scripts/venv.sh
.venv-ci/bin/pytest -q -p no:cacheprovider tests/ops
