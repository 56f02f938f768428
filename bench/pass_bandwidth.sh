#!/usr/bin/env bash
# hyperclean's full cross pass (one GEMM of [W U] per block of rows, X read once) against the
# memory bandwidth: for each row count, bench/pass_bandwidth measures a STREAM-style copy rate
# and the pass's rate (bytes of X read / time) in the same run, every rank at once.
# usage: bench/pass_bandwidth.sh [ranks] ["row counts"] [repeats] [copy MiB per array and rank]
# (defaults: 2, one per core; 20000 60000 200000 rows of 784 features; 7 repeats; 4 times the
# last-level cache shared out over the ranks, the STREAM rule, or 1024 MiB when unknown)
source "$(dirname "$0")/common.sh"
P=${1:-2}
ROWS=${2:-"20000 60000 200000"}
REPS=${3:-7}
l3=$(getconf LEVEL3_CACHE_SIZE 2>/dev/null)
l3=${l3:-0}
[ "$l3" -gt 0 ] 2>/dev/null || l3=0
COPY=${4:-$([ "$l3" -gt 0 ] && echo $((4 * l3 / P / 1048576)) || echo 1024)}
prog=$build/bench/pass_bandwidth
[ -x "$prog" ] || cmake --build "$build" --target pass_bandwidth >/dev/null || exit 1
out=$results/pass_bandwidth.md
csv=$results/pass_bandwidth.csv
fields="ranks rows features classes repeats x_mib_per_rank copy_mib_per_array copy_gb_per_s pass_seconds pass_gb_per_s pass_gflop_per_s fraction_of_copy"
echo "${fields// /,}" >"$csv"
for n in $ROWS; do
  res=$(mpirun_n "$P" "$prog" "$n" "$REPS" "$COPY") || { echo "pass_bandwidth failed for $n rows" >&2; exit 1; }
  line=""
  for f in $fields; do
    val=$(awk -v k="$f" '$1 == k {print $2}' <<<"$res")
    [ -n "$val" ] || { echo "pass_bandwidth printed no $f for $n rows" >&2; exit 1; }
    line="$line${line:+,}$val"
  done
  echo "$line" >>"$csv"
done
{
  echo "# The fused cross pass of hyperclean against the copy rate"
  echo
  machine_record
  echo
  echo "Command: \`bench/pass_bandwidth.sh $P \"$ROWS\" $REPS $COPY\`. In each run, every one of the"
  echo "$P rank(s) at once: (a) a STREAM-style copy \`c[i] = a[i]\` of two arrays of $COPY MiB per rank, the best"
  echo "of $REPS repeats, rate = bytes read + written / time (write-allocate traffic not counted,"
  echo "as in STREAM); (b) \`pb->ops.cross\` of a hyperclean problem on synthetic data (784"
  echo "features, 10 classes; the rows split over the ranks like the data layer), the median of"
  echo "$REPS repeats after one untimed call, rate = bytes of X read / time, and the fused GEMM's"
  echo "flops (2 rows x 784 x 20) / time. Times are the slowest rank's, bytes summed over the"
  echo "ranks. Last-level cache: $((l3 / 1048576)) MiB (\`getconf LEVEL3_CACHE_SIZE\`): a pass"
  echo "whose X fits in it may be served from the cache, not from memory."
  echo
  echo "| rows | X MiB per rank | copy GB/s | pass s | pass GB/s | pass GFLOP/s | pass / copy |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  tail -n +2 "$csv" | awk -F, '{printf "| %s | %.1f | %.2f | %.4f | %.2f | %.1f | %.2f |\n", $2, $6, $8, $9, $10, $11, $12}'
} >"$out"
cat "$out"
