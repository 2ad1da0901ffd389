#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang into build-fuzz/ and runs each for
# a time budget, then prints executions, coverage and findings per target.
#
#   fuzz/run.sh [seconds] [target...]     default: 60 s each, every target
#   fuzz/run.sh --smoke                    the test suite's check: 8 s each, starting from the
#                                          committed seeds only (a scratch working corpus)
#   fuzz/run.sh --keep-going 600 ...       long runs: libFuzzer's fork mode, which records
#                                          a crash, timeout or OOM and goes on fuzzing
#   fuzz/run.sh --list                     the targets
#
# Targets: safetensors model_config service_config tokenizer tokenizer_encode
# calib_dataset vlm_dataset image quantized_folder (fuzz/<target>_fuzz.cc).
#
# Each target's growing corpus is build-fuzz/corpus/<target> (kept between
# runs; the committed seeds in fuzz/corpus/<target> are read as well), its
# findings go to build-fuzz/findings/<target>/ (crash-*, timeout-*, oom-*,
# leak-*), its log to build-fuzz/logs/<target>.log. Reproduce a finding with
#   build-fuzz/fuzz/<target>_fuzz build-fuzz/findings/<target>/crash-...
#
# Environment: LWQ_FUZZ_BUILD_DIR (default build-fuzz), CXX (default clang++,
# must be clang), LWQ_FUZZ_JOBS (build and parallel fuzzers, default 2; with
# N > 1, N targets run at a time), LWQ_FUZZ_TIMEOUT (seconds one input may take,
# default 10), LWQ_FUZZ_RSS_MB (default 2048), LWQ_FUZZ_ARGS (extra libFuzzer flags).
#
# Exit status: 0 no findings, 1 findings, 2 usage/build error, 77 skipped (no
# clang or no libFuzzer runtime; ctest reports it as skipped).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

all_targets=(safetensors model_config service_config tokenizer tokenizer_encode calib_dataset vlm_dataset image
             quantized_folder)
seconds=60
keep_going=0
smoke=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --smoke) seconds=8 smoke=1 ;;
    --keep-going) keep_going=1 ;;
    --list) printf '%s\n' "${all_targets[@]}"; exit 0 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *[!0-9]*) if [[ " ${all_targets[*]} " == *" $arg "* ]]; then targets+=("$arg")
              else echo "fuzz/run.sh: unknown target '$arg' (fuzz/run.sh --list)" >&2; exit 2; fi ;;
    *) seconds="$arg" ;;
  esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")

build="${LWQ_FUZZ_BUILD_DIR:-build-fuzz}"
jobs="${LWQ_FUZZ_JOBS:-2}"
cxx="${CXX:-clang++}"
[[ "$cxx" == *clang* ]] || cxx=clang++

# ---- can this machine build libFuzzer programs? otherwise skip (77) ----
if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "SKIPPED: $cxx not found (install clang, libclang-rt-dev and libomp-dev; see docs/reliability.md)"
  exit 77
fi
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe/p.cc"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cc" -o "$probe/p" >"$probe/log" 2>&1; then
  echo "SKIPPED: $cxx cannot link -fsanitize=fuzzer,address,undefined (libclang-rt-dev missing?):"
  sed 's/^/  /' "$probe/log" | head -5
  exit 77
fi
echo 'int main() { return 0; }' >"$probe/omp.cc"
if ! "$cxx" -fopenmp "$probe/omp.cc" -o "$probe/omp" >"$probe/log" 2>&1; then
  echo "SKIPPED: $cxx -fopenmp does not link (libomp-dev missing?); lwquant's build needs OpenMP"
  exit 77
fi

# ---- build ----
# One run at a time per build folder (several build trees' ctest runs share build-fuzz).
mkdir -p "$build"
exec 9>"$build/.run.lock"
flock 9
if [[ ! -f "$build/build.ninja" ]] || ! grep -q '^LWQ_FUZZ:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "== configuring $build with $cxx"
  cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DLWQ_FUZZ=ON -DLWQ_BUILD_TESTS=OFF -DLWQ_BUILD_BENCH=OFF >"$probe/cmake.log" 2>&1 ||
    { cat "$probe/cmake.log"; exit 2; }
fi
echo "== building ${targets[*]} in $build (-j$jobs)"
start=$SECONDS
cmake --build "$build" -j"$jobs" --target "${targets[@]/%/_fuzz}" >"$probe/build.log" 2>&1 ||
  { tail -40 "$probe/build.log"; exit 2; }
echo "   built in $((SECONDS - start)) s"

# ---- fuzz ----
mkdir -p "$build/logs"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

run_one() {
  local t="$1" corpus="$build/corpus/$1" findings="$build/findings/$1" log="$build/logs/$1.log"
  ((smoke)) && corpus="$probe/corpus/$1"
  mkdir -p "$corpus" "$findings"
  local dict=() mode=()
  [[ -f fuzz/dict/$t.dict ]] && dict=(-dict="fuzz/dict/$t.dict")
  ((keep_going)) && mode=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  # shellcheck disable=SC2086
  "$build/fuzz/${t}_fuzz" "$corpus" "fuzz/corpus/$t" "${dict[@]}" "${mode[@]}" \
    -max_total_time="$seconds" -timeout="${LWQ_FUZZ_TIMEOUT:-10}" -rss_limit_mb="${LWQ_FUZZ_RSS_MB:-2048}" \
    -artifact_prefix="$findings/" -print_final_stats=1 ${LWQ_FUZZ_ARGS:-} >"$log" 2>&1
  echo $? >"$log.rc"
}

echo "== fuzzing ${#targets[@]} target(s) for $seconds s each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then wait -n; running=$((running - 1)); fi
done
wait

# ---- report ----
status=0
printf '%-17s %10s %8s %6s %7s %7s  %s\n' target execs exec/s cov ft corpus result
for t in "${targets[@]}"; do
  log="$build/logs/$t.log"
  rc="$(cat "$log.rc" 2>/dev/null || echo 2)"
  if grep -qE '^#[0-9]+: cov: ' "$log"; then  # fork mode: "#runs: cov: N ft: N corp: N exec/s N oom/timeout/crash: a/b/c ..."
    line="$(grep -E '^#[0-9]+: cov: ' "$log" | tail -1)"
    execs="$(sed -n 's/^#\([0-9]*\):.*/\1/p' <<<"$line")"
    eps="$(sed -n 's/.* exec\/s \([0-9]*\).*/\1/p' <<<"$line")"
    corp="$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$line")"
    fails="$(sed -n 's/.* oom\/timeout\/crash: \([0-9\/]*\).*/\1/p' <<<"$line")"
    [[ -n "$fails" && "$fails" != 0/0/0 ]] && rc=1
  else
    line="$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)"
    execs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -1 | awk '{print $2}')"
    eps="$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | tail -1 | awk '{print $2}')"
    corp="$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$line")"
    fails=""
  fi
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$line")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$line")"
  result=ok art=""
  if [[ "$rc" != 0 ]]; then
    if ((keep_going)); then
      n="$(ls "$build/findings/$t" 2>/dev/null | wc -l)"
      art="$n file(s) in $build/findings/$t/, newest $(ls -t "$build/findings/$t" 2>/dev/null | head -1)"
    fi
    status=1
    kind="$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer): [a-zA-Z -]+|runtime error: .*|exception other than lwq::Error.*' "$log" | head -1)"
    ((keep_going)) || art="$(grep -m1 -oE "Test unit written to [^ ]+" "$log" | awk '{print $5}')"
    result="FINDING (rc $rc${fails:+, oom/timeout/crash $fails}): ${kind:-see $log} ${art:+-> $art}"
  fi
  printf '%-17s %10s %8s %6s %7s %7s  %s\n' "$t" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
echo "logs: $build/logs/, findings: $build/findings/"
exit $status
