#!/usr/bin/env bash
# Runs libFuzzer targets built by `swift build --package-path Fuzz -Xswiftc -sanitize=fuzzer,address ...`.
#
#   Fuzz/run.sh SECONDS [--smoke] TARGET...
#
# Each target runs for SECONDS over its seed corpus Fuzz/Corpus/<TARGET> (with the libFuzzer dictionary
# Fuzz/Dict/<TARGET>.dict when there is one):
#   --smoke  on a throw-away copy of the corpus (new inputs are dropped; git stays clean)
#   default  on Fuzz/.build/corpus/<TARGET>, seeded from the committed corpus and kept between
#            runs (so long runs build on each other; never committed)
# A crash, an invariant failure, a leak or a timeout fails the run; the input is saved to
# Fuzz/.build/crashes/<TARGET>/ and the command to reproduce it is printed. Prints one
# "executions" line per target and a summary.
#
# Environment: FUZZ_BIN_DIR [Fuzz/.build/debug], FUZZ_MAX_LEN [4096], FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
die() { echo "Fuzz/run.sh: ERROR: $*" >&2; exit 2; }

[ $# -ge 2 ] || die "usage: Fuzz/run.sh SECONDS [--smoke] TARGET..."
seconds=$1; shift
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || die "SECONDS must be a positive number, got '$seconds'"
smoke=0
if [ "${1:-}" = --smoke ]; then smoke=1; shift; fi
[ $# -ge 1 ] || die "no target given"

bin_dir=${FUZZ_BIN_DIR:-$here/.build/debug}
max_len=${FUZZ_MAX_LEN:-4096}
crash_root=$here/.build/crashes
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vwfcgi-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# Swift's own crash handler fights AddressSanitizer's; libFuzzer reports the crash itself.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}

failed=()
summary=()
for target in "$@"; do
    binary=$bin_dir/$target
    seeds=$here/Corpus/$target
    [ -x "$binary" ] || die "no fuzz binary $binary (build it: make fuzz-build)"
    [ -d "$seeds" ] || die "no seed corpus $seeds"
    if [ $smoke = 1 ]; then
        corpus=$scratch/corpus-$target
        mkdir -p "$corpus"
        cp "$seeds"/* "$corpus"/
    else
        corpus=$here/.build/corpus/$target
        mkdir -p "$corpus"
        cp -n "$seeds"/* "$corpus"/
    fi
    artifacts=$scratch/artifacts-$target
    mkdir -p "$artifacts"
    log=$scratch/$target.log
    dict=()
    [ -f "$here/Dict/$target.dict" ] && dict=(-dict="$here/Dict/$target.dict")
    echo "fuzz: $target for ${seconds}s over $(ls "$corpus" | wc -l) inputs ($corpus)"
    set +e
    # shellcheck disable=SC2086
    "$binary" "$corpus" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1
    status=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    [ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    cov=$(grep -o "cov: [0-9]*" "$log" | tail -1 | cut -d" " -f2 || true)
    found=$(find "$artifacts" -type f | wc -l)
    if [ $status -ne 0 ] || [ "$found" -gt 0 ]; then
        mkdir -p "$crash_root/$target"
        cp "$artifacts"/* "$crash_root/$target"/ 2>/dev/null || true
        grep -E 'invariant broken|Fatal error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|SUMMARY' "$log" | head -5 >&2 || true
        tail -n 30 "$log" > "$crash_root/$target/last.log"
        for a in "$artifacts"/*; do
            [ -e "$a" ] && echo "fuzz: $target FAILED; reproduce: SWIFT_BACKTRACE=enable=no $binary $crash_root/$target/$(basename "$a")" >&2
        done
        [ "$found" -gt 0 ] || echo "fuzz: $target FAILED (exit $status); log: $crash_root/$target/last.log" >&2
        failed+=("$target")
        summary+=("$target: FAILED after ${runs:-?} executions")
    else
        summary+=("$target: ${runs:-?} executions in ${seconds}s, coverage ${cov:-?}, corpus $(ls "$corpus" | wc -l) inputs, no crash")
    fi
    echo "fuzz: ${summary[-1]}"
done

echo "fuzz summary:"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "Fuzz/run.sh: ERROR: crashes in ${failed[*]} (inputs in $crash_root; minimise with -minimize_crash=1," \
         "then add the input to Fuzz/Corpus/<target>/ as a regression test once fixed)" >&2
    exit 1
fi
