#!/usr/bin/env bash
# bench/pass_bandwidth.sh runs end to end on small sizes, into a scratch folder: every field of
# the program is printed with a number, and the results page records machine, date and commit.
# Nothing is timed against a threshold.
# usage: pass_bandwidth.sh SOURCE_DIR BUILD_DIR
set -u
src=$1 build=$2
dir=$PWD/bench_pass_bandwidth
rm -rf "$dir" && mkdir -p "$dir/results" || exit 1
export NHGD_BUILD=$build NHGD_BENCH_RESULTS=$dir/results NHGD_BENCH_WORK=$dir/work
bash "$src/bench/pass_bandwidth.sh" 1 "1500 2100" 2 8 >"$dir/log.txt" 2>&1 || {
  echo "FAIL bench/pass_bandwidth.sh"
  tail -20 "$dir/log.txt"
  exit 1
}
failures=0
csv=$dir/results/pass_bandwidth.csv
md=$dir/results/pass_bandwidth.md
if [ "$(head -1 "$csv")" = "ranks,rows,features,classes,repeats,x_mib_per_rank,copy_mib_per_array,copy_gb_per_s,pass_seconds,pass_gb_per_s,pass_gflop_per_s,fraction_of_copy" ] &&
  [ "$(tail -n +2 "$csv" | grep -cE '^1,(1500|2100),784,10,2(,[0-9]+(\.[0-9]+)?){7}$')" -eq 2 ]; then
  echo "ok   two rows of twelve numeric fields: $(tail -1 "$csv")"
else
  echo "FAIL the CSV lacks a field or a row:"
  sed 's/^/    /' "$csv"
  failures=$((failures + 1))
fi
if grep -q "^Measured on .*, commit [0-9a-f]*" "$md" && [ "$(grep -c '^| [0-9]' "$md")" -eq 2 ]; then
  echo "ok   results page with the machine record and two table rows"
else
  echo "FAIL results page:"
  sed 's/^/    /' "$md"
  failures=$((failures + 1))
fi
echo "$failures failures"
[ "$failures" -eq 0 ]
