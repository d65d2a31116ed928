#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets (Fuzz/Package.swift, -sanitize=fuzzer,address),
# seeds their corpora from the fixtures (Fuzz/seeds.py) and runs each, one at a time, for
# FUZZ_SECONDS (default 60), or for FUZZ_RUNS executions. Fails on any crash, allocation over FUZZ_MALLOC_MB, RSS over
# FUZZ_RSS_MB or input slower than FUZZ_TIMEOUT seconds; the input is kept in
# .build-fuzz/artifacts/. Corpora grow in .build-fuzz/corpus/ across runs.
#   FUZZ_TARGETS="gguf torch"   only these targets
#   FUZZ_RUNS=10000000          run each target for this many executions (with FUZZ_JOBS,
#                               all workers together) instead of FUZZ_SECONDS; FUZZ_SECONDS, when
#                               also given, still caps the time
#   FUZZ_TOTAL_SECONDS=3600     a time budget for all targets together, in place of
#                               FUZZ_SECONDS: each target gets the time left over the targets
#                               left (so what a target finishing early with FUZZ_RUNS leaves
#                               goes to the next ones)
#   FUZZ_JOBS=2                 libFuzzer workers per target (-fork), for long runs
#   FUZZ_BIN=DIR                run the fuzz-* binaries in DIR, built before (no build)
#   FUZZ_CKPT=path/to/ckpt      a ckpt binary for the seeds (default: build this checkout's)
#   FUZZ_NICE=19                niceness (the default 19 leaves the machine to others)
#   FUZZ_CONFIG=debug           build unoptimised (CI's smoke: builds in about half the time,
#                               runs a few times slower); release by default
#   FUZZ_SCRATCH_PATH=DIR       build directory (default .build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${FUZZ_RUNS:-}" ]; then SECONDS_EACH=${FUZZ_SECONDS:-0}; else SECONDS_EACH=${FUZZ_SECONDS:-60}; fi
SCRATCH=${FUZZ_SCRATCH_PATH:-.build-fuzz}
CONFIG=${FUZZ_CONFIG:-release}
NICE=${FUZZ_NICE:-19}
ALL="safetensors sharded-index gguf ckz ckz-index ckz-chunk npy npz torch pickle json model-config pipeline-yaml tokenizer detect imatrix"
TARGETS=${FUZZ_TARGETS:-$ALL}

if [ -n "${FUZZ_BIN:-}" ]; then
    BIN=$FUZZ_BIN
else
    # --sanitize=fuzzer --sanitize=address reach swiftc as two -sanitize= flags in an order
    # SwiftPM does not fix, and swift-frontend keeps only the last: Swift code was built
    # with ASan and no coverage (libFuzzer fuzzing blind) or with coverage and no ASan.
    # The one combined flag last on the line gives it both; the check below makes sure.
    SANITIZE=(--sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address)
    echo "== building the fuzz targets ($CONFIG, -sanitize=fuzzer,address) in $SCRATCH"
    nice -n "$NICE" swift build -c "$CONFIG" --package-path Fuzz --scratch-path "$SCRATCH" \
        "${SANITIZE[@]}" 2>&1 | grep -v "^\[" || true
    BIN=$(swift build -c "$CONFIG" --package-path Fuzz --scratch-path "$SCRATCH" "${SANITIZE[@]}" --show-bin-path)
    # Every target links CkptCore: its objects must carry coverage counters and ASan checks.
    if command -v nm > /dev/null; then
        syms=$(nm "$BIN"/CkptCore.build/*.o 2>/dev/null || true)
        if ! grep -q "__sancov_cntrs" <<< "$syms" || ! grep -q "__asan_report" <<< "$syms"; then
            echo "fuzz: Swift code in $BIN was built without coverage or without ASan" >&2
            exit 2
        fi
    fi
fi
for t in $TARGETS; do [ -x "$BIN/fuzz-$t" ] || { echo "fuzz-$t was not built" >&2; exit 2; }; done

echo "== seeds from fixtures/"
CKPT=${FUZZ_CKPT:-}
if [ -z "$CKPT" ]; then
    nice -n "$NICE" swift build --product ckpt 2>&1 | grep -v "^\[" || true
    CKPT="$(swift build --show-bin-path)/ckpt"
fi
rm -rf "$SCRATCH/seeds"
python3 Fuzz/seeds.py "$CKPT" "$SCRATCH/seeds"

mkdir -p "$SCRATCH/artifacts" "$SCRATCH/logs" "$SCRATCH/tmp"
# The file readers get each input as an in-memory MappedFile (FuzzHooks.file); the targets
# that take a path (sharded-index, pipeline-yaml, detect, imatrix) write it to a file: on tmpfs where there is
# one (7x the executions per second of a disk-backed directory here).
if [ -z "${FUZZ_SCRATCH:-}" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then FUZZ_SCRATCH=/dev/shm/ckpt-fuzz-run-$$; else FUZZ_SCRATCH="$PWD/$SCRATCH/tmp"; fi
    mkdir -p "$FUZZ_SCRATCH"
    trap 'rm -rf "$FUZZ_SCRATCH"' EXIT
fi
export FUZZ_SCRATCH
# Leaks are not the question here (the Swift runtime keeps caches); huge allocations are,
# through -malloc_limit_mb. malloc_context_size=0: no stack trace recorded per allocation
# (a quarter to a third of the Swift targets' time under ASan; heap errors are still caught,
# their reports just lack the allocation's stack: rerun the kept input with
# ASAN_OPTIONS=detect_leaks=0 for it).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:handle_abort=1:malloc_context_size=0}
# Swift's own backtracer would race AddressSanitizer's report on a trap.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
failed=()
summary=()
budget_end=$((SECONDS + ${FUZZ_TOTAL_SECONDS:-0}))
left=$(echo $TARGETS | wc -w)
for t in $TARGETS; do
    if [ -n "${FUZZ_TOTAL_SECONDS:-}" ]; then
        SECONDS_EACH=$(( (budget_end - SECONDS) / left ))
        [ "$SECONDS_EACH" -lt 1 ] && SECONDS_EACH=1
    fi
    left=$((left - 1))
    mkdir -p "$SCRATCH/corpus/$t"
    log="$SCRATCH/logs/$t.log"
    extra=()
    [ -n "${FUZZ_JOBS:-}" ] && extra+=(-fork="$FUZZ_JOBS" -ignore_crashes=0)
    [ -n "${FUZZ_RUNS:-}" ] && extra+=(-runs="$FUZZ_RUNS")
    limit="${SECONDS_EACH}s"; [ "$SECONDS_EACH" = 0 ] && limit="no time limit"
    echo "== fuzz-$t for ${FUZZ_RUNS:+$FUZZ_RUNS executions, }$limit"
    started=$SECONDS
    if nice -n "$NICE" "$BIN/fuzz-$t" "$SCRATCH/corpus/$t" "$SCRATCH/seeds/$t" \
        -dict="Fuzz/dict/$t.dict" -max_total_time="$SECONDS_EACH" -max_len=262144 \
        -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -malloc_limit_mb="${FUZZ_MALLOC_MB:-1024}" \
        -timeout="${FUZZ_TIMEOUT:-10}" -artifact_prefix="$SCRATCH/artifacts/$t-" \
        -print_final_stats=1 "${extra[@]}" > "$log" 2>&1; then
        result=ok
    else
        result=FAILED
        failed+=("$t")
        grep -E "ERROR|==[0-9]+==|Fatal error|Test unit written|SUMMARY" "$log" | head -20 >&2 || true
    fi
    if [ -n "${FUZZ_JOBS:-}" ]; then
        # -fork: the parent's last "#N:" line is the total (final stats, if any, are a worker's)
        execs=$(grep -oE "^#[0-9]+:" "$log" | tail -1 | tr -d '#:' || true)
    else
        execs=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$log" | grep -o "[0-9]*$" | awk '{s+=$1} END {print s+0}' || true)
    fi
    # Coverage at the end: edges and features of the last status line ("cov: X ft: Y").
    cov=$(grep -oE "cov: [0-9]+ ft: [0-9]+" "$log" | tail -1 | awk '{print $2 " / " $4}' || true)
    summary+=("$(printf '%-14s %12s execs %7ss  cov/ft %-13s %s' "$t" "${execs:-?}" "$((SECONDS - started))" "${cov:-?}" "$result")")
done
built="commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"; [ -n "${FUZZ_BIN:-}" ] && built="binaries in $FUZZ_BIN"
echo "== summary ($(date -u +%Y-%m-%d), $built, ${FUZZ_RUNS:+$FUZZ_RUNS executions or }${SECONDS_EACH}s each; logs in $SCRATCH/logs)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]} (inputs in $SCRATCH/artifacts/)" >&2
    exit 1
fi
