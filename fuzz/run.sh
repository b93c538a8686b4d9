#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, one after the other.
#
#   fuzz/run.sh [seconds-per-target] [target...]      (default: 60 s; filter patch resource)
#
# Each target starts from its committed seed corpus (fuzz/seeds/<target>, read only) and keeps
# what it discovers in a scratch corpus outside git (fuzz/corpus/<target>, or
# $FUZZ_CORPUS_DIR/<target>). Exits non-zero if any target crashed, hit a timeout or ran out
# of memory, and prints the reproducer's path (under fuzz/artifacts/<target>/).
#
# Environment: FUZZ_SANITIZER (default none; `address` for ASan), FUZZ_NICE (default 10),
# FUZZ_CODEGEN_UNITS (default 16: much faster builds of the big dependency tree),
# FUZZ_TIMEOUT (seconds per input, default 10), FUZZ_RSS_LIMIT_MB (default 2048).
set -uo pipefail

secs="${1:-60}"
[ "$#" -gt 0 ] && shift
targets=("$@")
[ "${#targets[@]}" -eq 0 ] && targets=(filter patch resource)

if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 [seconds-per-target] [target...]" >&2
    exit 2
fi

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scratch="${FUZZ_CORPUS_DIR:-$fuzz_dir/corpus}"
niceness="${FUZZ_NICE:-10}"
timeout_s="${FUZZ_TIMEOUT:-10}"
rss_mb="${FUZZ_RSS_LIMIT_MB:-2048}"
# Build and run must get identical options, or `cargo fuzz run` rebuilds everything.
build_opts=(-s "${FUZZ_SANITIZER:-none}" --codegen-units "${FUZZ_CODEGEN_UNITS:-16}")

# The longest input worth trying: a bit beyond the parser's 8 KiB limit for filters.
max_len() {
    case "$1" in
        filter) echo 9216 ;;
        *) echo 8192 ;;
    esac
}

cd "$fuzz_dir" || exit 2
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

echo "==> building fuzz targets (${build_opts[*]})"
if ! nice -n "$niceness" cargo +nightly fuzz build "${build_opts[@]}"; then
    echo "build failed" >&2
    exit 2
fi

failed=()
summary=()
for target in "${targets[@]}"; do
    if [ ! -d "seeds/$target" ]; then
        echo "unknown target '$target' (no seeds/$target)" >&2
        exit 2
    fi
    mkdir -p "$scratch/$target" "artifacts/$target"
    log="$(mktemp "${TMPDIR:-/tmp}/fuzz-$target.XXXXXX.log")"
    echo "==> $target for ${secs}s (log: $log)"
    nice -n "$niceness" cargo +nightly fuzz run "${build_opts[@]}" "$target" \
        "$scratch/$target" "seeds/$target" -- \
        -max_total_time="$secs" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" \
        -max_len="$(max_len "$target")" -dict="$fuzz_dir/scim.dict" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)"
    rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)"
    corpus="$(find "$scratch/$target" -type f | wc -l)"
    if [ "$rc" -ne 0 ]; then
        failed+=("$target")
        artifact="$(grep -o 'Test unit written to .*' "$log" | tail -n1 | sed 's/^Test unit written to //')"
        echo "!!! $target FAILED (exit $rc)"
        grep -E "panicked at|ERROR: libFuzzer|SUMMARY:" "$log" | head -n5
        echo "    reproducer: ${artifact:-see $fuzz_dir/artifacts/$target/}"
        echo "    replay: cd $fuzz_dir && cargo +nightly fuzz run ${build_opts[*]} $target ${artifact:-<artifact>}"
        summary+=("$target: FAILED, ${runs:-?} runs, ${rate:-?} exec/s, scratch corpus $corpus files, reproducer ${artifact:-?}")
    else
        summary+=("$target: ok, ${runs:-?} runs, ${rate:-?} exec/s, scratch corpus $corpus files")
    fi
done

echo "==> summary"
printf '    %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed targets: ${failed[*]}" >&2
    exit 1
fi
