#!/usr/bin/env bash
# The light client companies install: `berth` built without the `local` feature links no
# scheduler, agent, database or Docker code, and its `berth up` says why it cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."

heavy=$(cargo tree -p berth-cli --no-default-features -e normal --prefix none \
  | grep -E '^(berth-scheduler|berth-agent|berth-migrations|sea-orm|sea-query|sqlx|bollard|nvml-wrapper) ' \
  | sort -u || true)
if [ -n "$heavy" ]; then
  echo "the light client (--no-default-features) still depends on:" >&2
  echo "$heavy" >&2
  exit 1
fi

cargo build -q -p berth-cli --no-default-features
code=0
out=$(target/debug/berth up 2>&1) || code=$?
if [ "$code" != 2 ] || ! grep -q 'built without the `local` feature' <<<"$out"; then
  echo "the light client's \`berth up\` should exit 2 and say it was built without the local feature;" >&2
  echo "it exited $code with: $out" >&2
  exit 1
fi
echo "light client: no scheduler, agent, database or Docker code; berth up explains itself" >&2
