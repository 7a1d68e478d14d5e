#!/usr/bin/env bash
# Creates (or brings up to date) .venv-ci, the virtual environment of the operations
# tests' Python tools, from the pinned tests/ops/requirements.txt. Does nothing when it
# is already up to date. Installs python3-venv with apt when venv is missing (root).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-ci
req=tests/ops/requirements.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "venv: installing python3-venv" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq python3-venv >&2 || { apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2; }
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check --no-input -r "$req"
echo "$want" > "$stamp"
echo "venv: $venv ready ($("$venv/bin/python" --version))" >&2
