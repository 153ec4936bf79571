#!/usr/bin/env bash
# README command 2: installs what is missing, builds the project three ways
# (GCC; Clang with ASan+UBSan; Clang with libFuzzer, ASan and UBSan),
# compiles the firmware core for Cortex-M33, runs each fuzzer briefly, then
# every test in the GCC build and again in the sanitizer build, and finally
# builds and checks the Debian packages (scripts/package.sh).
#   FUZZ_SECONDS=N  seconds per fuzzer (default 10; 0 skips the fuzz runs)
#   CTEST_JOBS=N    tests run at once (default: twice the cores)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
jobs=$(nproc)
# Tests wait on brokers, buses and timers far more than they compute (a load
# of about 0.4 on 2 cores with two at a time): twice as many run at once.
test_jobs=${CTEST_JOBS:-$((jobs * 2))}
fuzz_seconds=${FUZZ_SECONDS:-10}

step() { printf '\n==> %s\n' "$*"; }

step "Dependencies"
scripts/deps.sh test

t0=$(date +%s)
step "Build (GCC)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

step "Build (Clang, ASan+UBSan)"
CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNRFGW_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"

step "Build (Clang, libFuzzer)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DNRFGW_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs"
t1=$(date +%s)
echo "build time: $((t1 - t0)) s for three configurations on $jobs cores"

if [ -x firmware_nrf91/scripts/m33-size.sh ]; then
  step "Firmware core for Cortex-M33"
  firmware_nrf91/scripts/m33-size.sh
fi

if [ "$fuzz_seconds" -gt 0 ]; then
  step "Fuzzers, ${fuzz_seconds} s each (new inputs go to a temporary directory)"
  for f in $(find build-fuzz -type f -name 'fuzz-*' -perm -u+x ! -name '*-replay' | sort); do
    name=$(basename "$f")
    work=$(mktemp -d)
    seeds="$top/tests/fuzz/corpus/$name"
    [ -d "$seeds" ] || seeds=""
    if ! "$f" -max_total_time="$fuzz_seconds" -print_final_stats=0 -artifact_prefix="$work/" \
         "$work" ${seeds:+"$seeds"} >"$work/log" 2>&1; then
      echo "FAIL $name; crash input and log kept in $work:"
      tail -n 30 "$work/log"
      exit 1
    fi
    echo "ok   $name: $(grep -Eo '#[0-9]+' "$work/log" | tail -n 1 | tr -d '#') runs"
    rm -rf "$work"
  done
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
declare -a summary
for dir in build build-asan; do
  step "Tests ($dir)"
  t2=$(date +%s)
  if ! (cd "$dir" && ctest -j"$test_jobs" --output-on-failure | tee ctest.log); then
    status=1
  fi
  t3=$(date +%s)
  echo "test time ($dir): $((t3 - t2)) s"
  total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$dir/ctest.log" | tail -n 1)
  failed=$(sed -n 's/.*, \([0-9]*\) tests failed out of.*/\1/p' "$dir/ctest.log" | tail -n 1)
  summary+=("${total:-0} ${failed:-0}")
done

step "Debian packages: amd64 build, lintian, install test, arm64 cross build under qemu-user"
t4=$(date +%s)
scripts/deps.sh package
if ! scripts/package.sh; then
  echo "FAIL scripts/package.sh"
  status=1
fi
echo "package time: $(($(date +%s) - t4)) s"

passed=0
failed=0
for s in "${summary[@]}"; do
  set -- $s
  passed=$((passed + $1 - $2))
  failed=$((failed + $2))
done
echo
echo "tests: $passed passed, $failed failed"
exit $status
