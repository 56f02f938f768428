#!/usr/bin/env bash
# Longer fuzzing runs: every libFuzzer harness for SECONDS each (default 60) from a scratch copy
# of its committed seed corpus, plus the data reader on raw file bytes (NHGD_FUZZ_RAW=1, which
# reaches HDF5's own parser). A run that finds a crash is started again on the grown corpus
# until the time is up. Executions, coverage (libFuzzer's cov: edges and ft: features), corpus
# size and crashes per harness go to bench/results/fuzz.md with the machine, date and commit;
# the crash inputs stay in build-fuzz/bench-work. usage: bench/fuzz.sh [SECONDS]
source "$(dirname "$0")/common.sh"
secs=${1:-60}
fbuild=${NHGD_FUZZ_BUILD:-$root/build-fuzz}
if [ ! -x "$fbuild/tests/fuzz_checkpoint" ]; then
  cmake -S "$root" -B "$fbuild" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
    -DNHGD_FUZZ=ON -DNHGD_TEST_AREAS=fuzz -DNHGD_BUILD_BENCH=OFF >/dev/null
  cmake --build "$fbuild" -j "$(nproc)" >/dev/null
fi
fwork=$fbuild/bench-work
mkdir -p "$fwork"
export LSAN_OPTIONS=suppressions=$root/tests/fuzz/lsan.supp:print_suppressions=0
table="| harness | seconds | executions | exec/s | cov | ft | corpus units | crashes |
|---|---:|---:|---:|---:|---:|---:|---:|"
notes=""
for h in options libsvm idx h5data checkpoint h5data_raw; do
  bin=$fbuild/tests/fuzz_${h%_raw}
  raw=0 extra="" asan="detect_leaks=1:fast_unwind_on_malloc=0"
  [ "$h" = h5data_raw ] && raw=1
  case $h in h5data* | checkpoint)
    extra="-malloc_limit_mb=4000000000" asan="allocator_may_return_null=1:$asan"
    ;;
  esac
  corpus=$fwork/corpus_$h
  crashes=$fwork/crashes_$h
  rm -rf "$corpus" "$crashes" && cp -r "$root/tests/fuzz/corpus/$h" "$corpus" && mkdir -p "$crashes"
  start=$(date +%s) execs=0 last="" found=""
  while :; do
    left=$((secs - ($(date +%s) - start)))
    [ "$left" -gt 0 ] || break
    # shellcheck disable=SC2086
    (cd "$crashes" && NHGD_FUZZ_RAW=$raw ASAN_OPTIONS=$asan "$bin" -max_total_time="$left" \
      -rss_limit_mb=2048 $extra -print_final_stats=1 "$corpus") >"$fwork/log_$h.txt" 2>&1
    execs=$((execs + $(sed -n 's/^stat::number_of_executed_units: *//p' "$fwork/log_$h.txt" | tail -1)))
    last=$(grep -E '^#[0-9]+' "$fwork/log_$h.txt" | grep -o 'cov: [0-9]* ft: [0-9]*' | tail -1)
    summary=$(grep -m1 '^SUMMARY' "$fwork/log_$h.txt" | cut -c1-160)
    [ -n "$summary" ] && found="$found; ${summary#SUMMARY: }"
    grep -q '^SUMMARY' "$fwork/log_$h.txt" || break
  done
  took=$(($(date +%s) - start))
  ncrash=$(find "$crashes" -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
  cov=$(echo "$last" | awk '{print $2}') ft=$(echo "$last" | awk '{print $4}')
  table="$table
| $h | $took | $execs | $((execs / (took > 0 ? took : 1))) | ${cov:-?} | ${ft:-?} | $(find "$corpus" -type f | wc -l) | $ncrash |"
  [ -n "$found" ] && notes="$notes
- $h:${found#;}"
  echo "$h: $took s, $execs executions, ${last:-no coverage line}, $ncrash crashes"
done
{
  echo "# Fuzzing"
  echo
  echo "\`bench/fuzz.sh $secs\`: each harness for $secs s from a copy of its seed corpus"
  echo "(tests/fuzz/corpus), restarted after a crash until the time is up. h5data builds the file"
  echo "its input describes and reads it; h5data_raw reads the input as the file's bytes."
  echo "$(machine_record)"
  echo
  echo "$table"
  echo
  if [ -n "$notes" ]; then
    echo "Crashes (the first report of each run):"
    echo "$notes"
  else
    echo "No crashes."
  fi
} >"$results/fuzz.md"
echo "wrote $results/fuzz.md"
