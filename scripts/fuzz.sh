#!/usr/bin/env bash
# Builds Berth's fuzz targets (fuzz/, cargo-fuzz, AddressSanitizer) and runs each for
# FUZZ_SECONDS seconds (default 60) from its seed corpus in fuzz/corpus/TARGET/.
#
#   scripts/fuzz.sh                    every target
#   scripts/fuzz.sh validate heartbeat only these
#   FUZZ_SECONDS=600 scripts/fuzz.sh   longer runs
#   FUZZ_SANITIZER=none                without ASAN (faster build and runs)
#   FUZZ_KEEP_CORPUS=1                 grow fuzz/corpus/TARGET/ with what the run finds
#                                      (then minimise: cargo fuzz cmin TARGET)
#
# Needs cargo-fuzz (`.ci/run` installs it). cargo-fuzz passes nightly flags (-Z sanitizer,
# coverage instrumentation); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# Fails on the first target that crashes, after printing its input (fuzz/artifacts/).
# Prints one line per target: executions, seconds, corpus size.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing (.ci/run installs it; or: cargo install --locked cargo-fuzz@0.13.2)" >&2
    exit 1
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
flags=(-O --debug-assertions --sanitizer "$sanitizer")

start=$(date +%s)
cargo fuzz build "${flags[@]}" >&2
echo "fuzz: built ${#targets[@]} targets in $(($(date +%s) - start)) s (sanitizer: $sanitizer)" >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
    seeds="fuzz/corpus/$t"
    mkdir -p "$seeds" "$work/$t"
    # New inputs go to the first directory: a scratch one, unless asked to keep them.
    out="$work/$t"
    [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ] && out="$seeds"
    log="$work/$t.log"
    t0=$(date +%s)
    if ! cargo fuzz run "${flags[@]}" "$t" "$out" "$seeds" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 80 "$log" >&2
        echo "fuzz: $t FAILED: the input is in fuzz/artifacts/$t/ (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run ${flags[*]} $t fuzz/artifacts/$t/<file>)" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    corpus=$(find "$out" "$seeds" -type f | sort -u | wc -l)
    echo "fuzz: $t: ${runs:-?} executions in $(($(date +%s) - t0)) s, no crash (corpus $corpus inputs)"
done
