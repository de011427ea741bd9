#!/usr/bin/env bash
# Builds FuseKit's libFuzzer harnesses with AddressSanitizer and runs each one for a bounded time
# from its committed seed corpus. Exits non-zero when a harness finds a crash, a sanitizer error,
# a failed invariant, a leak, a timeout or an out-of-memory input (libFuzzer saves the input as
# $FUZZ_OUT/<harness>-crash-*, -leak-*, -timeout-* or -oom-*).
#
#   Tests/Fuzz/run.sh                  # every harness, FUZZ_SECONDS (40) each
#   Tests/Fuzz/run.sh fuzz-png         # some harnesses
#   FUZZ_SECONDS=600 Tests/Fuzz/run.sh fuzz-jpeg
#   FUZZ_MODE=regress Tests/Fuzz/run.sh   # only replay the seed corpora (no fuzzing)
#
# Why a separate SwiftPM package (Tests/Fuzz/Package.swift, FuseKit as a path dependency)
# rather than swiftc invocations: SwiftPM builds FuseKit, Yams and the C codecs exactly as the
# product does, with the sanitizer and coverage flags applied to every module (Swift and C),
# and the harnesses stay ordinary executables. Each one keeps its own `main` and calls
# libFuzzer's `LLVMFuzzerRunDriver` (SwiftPM renames an executable's `main`, which rules out
# libFuzzer's own); lld links them (gold fails on that layout).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-40}"
mode="${FUZZ_MODE:-fuzz}"
out="${FUZZ_OUT:-$PWD/.build/fuzz-findings}"
build_path="${FUZZ_BUILD_PATH:-$PWD/.build}"
all=(fuzz-png fuzz-jpeg fuzz-bmp fuzz-safetensors fuzz-recipe fuzz-yolo fuzz-voc fuzz-pth)
harnesses=("${@:-${all[@]}}")

echo "== building the fuzz harnesses (release, -sanitize=fuzzer,address)"
swift build -c release --build-path "$build_path" --sanitize=address \
    -Xswiftc -sanitize=fuzzer -Xcc -fsanitize=fuzzer-no-link -Xswiftc -use-ld=lld
bin="$(swift build -c release --build-path "$build_path" --show-bin-path)"

mkdir -p "$out"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
# Swift's own crash reporter would run inside ASan's signal handling; libFuzzer reports instead.
export SWIFT_BACKTRACE=enable=no
summary=()
failed=0
for harness in "${harnesses[@]}"; do
    name="${harness#fuzz-}"
    seeds="Corpus/$name"
    [ -d "$seeds" ] || { echo "no seed corpus $seeds for $harness" >&2; exit 2; }
    dictionary=()
    [ -f "Dictionaries/$name.dict" ] && dictionary=(-dict="Dictionaries/$name.dict")
    log="$out/$harness.log"
    if [ "$mode" = regress ]; then
        echo "== $harness: replaying $seeds"
        set +e
        "$bin/$harness" -runs=0 -timeout=10 -rss_limit_mb=2048 "$seeds" >"$log" 2>&1
        status=$?
        set -e
    else
        # New inputs go to a scratch corpus; the committed seeds are only read.
        work="$out/corpus-$name"
        mkdir -p "$work"
        echo "== $harness: fuzzing for ${seconds}s from $seeds"
        set +e
        "$bin/$harness" "$work" "$seeds" "${dictionary[@]}" -max_total_time="$seconds" -timeout=10 \
            -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 -artifact_prefix="$out/$harness-" >"$log" 2>&1
        status=$?
        set -e
    fi
    last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
    cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
    ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
    if [ "$status" -ne 0 ]; then
        failed=1
        echo "!! $harness failed (exit $status); log: $log" >&2
        grep -E 'ERROR|oracle|Fatal error|SUMMARY|Test unit written|deadly signal|==[0-9]+==' "$log" | head -20 >&2 || true
        summary+=("$(printf '%-18s FAILED (exit %s)' "$harness" "$status")")
    elif [ "$mode" = regress ]; then
        summary+=("$(printf '%-18s replayed %s inputs' "$harness" "$(ls "$seeds" | wc -l)")")
    else
        summary+=("$(printf '%-18s %10s execs %8s exec/s  cov %6s  ft %6s' "$harness" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}")")
    fi
done

echo "== fuzzing summary ($mode)"
printf '%s\n' "${summary[@]}"
exit "$failed"
