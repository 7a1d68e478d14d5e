#!/usr/bin/env bash
# Installs, with apt and only when missing, the tools the operations tests use
# (Debian 12, as root): prometheus and promtool (Debian's prometheus), sqlite3,
# systemd-analyze (systemd), python3-venv, gcc, the PostgreSQL client tools, and for the
# network-fault suite (cli/tests/netfault.rs) ip (iproute2), nft (nftables) and
# libfaketime.
# Services a package would start (Debian's prometheus) are not started.
set -euo pipefail

missing=()
{ command -v prometheus && command -v promtool; } >/dev/null || missing+=(prometheus)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v systemd-analyze >/dev/null || missing+=(systemd)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v gcc >/dev/null || missing+=(gcc)
{ command -v pg_dump && command -v pg_restore && command -v psql; } >/dev/null || missing+=(postgresql-client)
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing+=(libfaketime)
[ ${#missing[@]} -eq 0 ] && exit 0

[ "$(id -u)" = 0 ] || { echo "ops-tools: run as root to install: ${missing[*]}" >&2; exit 1; }
echo "ops-tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# No package may start its service here (the tests start their own Prometheus).
policy=/usr/sbin/policy-rc.d
made_policy=false
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && made_policy=true
fi
trap '$made_policy && rm -f "$policy"' EXIT
install() { apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }
install || { apt-get update -qq >&2 && install; }
