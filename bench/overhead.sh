#!/usr/bin/env bash
# What the curvature estimate costs on top of inner SGD: wall time of one outer step of the
# main job (Fashion-MNIST hyper-cleaning, d = 7,840) with `nhgd` per route (the full EFIM
# routes with and without overlap, kfac in both layouts and with both G factors, and
# subsampled Fisher variants), divided by the same outer step with no estimator, all in one
# run; bytes received per inner step. Every variant sums and factors at every outer step
# (--kfac-refresh 1); bench/refresh.sh measures the main job's refresh.
# usage: bench/overhead.sh [ranks] [repeats]
source "$(dirname "$0")/common.sh"
P=${1:-2}
R=${2:-3}
data=$work/fashion_mnist.h5
[ -f "$data" ] || "$nhgd" data fashion-mnist --output "$data" >/dev/null
csv=$results/overhead.csv
out=$results/overhead.md
echo "estimator,variant,repeat,seconds_per_outer_step,bytes_per_inner_step" >"$csv"
measure() { # label repeat nhgd-arguments...
  local label=$1 rep=$2 o=$work/overhead.h5
  shift 2
  mpirun_n "$P" "$nhgd" run --config "$root/jobs/hyperclean_fmnist.cfg" --data "$data" \
    --outer-steps 3 --eval-every 0 --log-level 1 --kfac-refresh 1 --output "$o" "$@" || exit 1
  # Outer steps 2 and 3 (the first includes one-off warm-up); their mean.
  local sec bytes
  sec=$(h5get "$o" "(f['history/wall_time'][2] - f['history/wall_time'][0]) / 2")
  bytes=$(h5get "$o" "f.attrs['estimator_bytes_per_inner_step']")
  echo "${label%%:*},\"${label#*:}\",$rep,$sec,$bytes" >>"$csv"
}
variants=(
  "nhgd:kfac, K = 64 (the main job's route: auto, A replicated, G model)|--estimator nhgd"
  "nhgd:kfac, every sample|--estimator nhgd --efim-samples 0"
  "nhgd:kfac, K = 64, overlap 0|--estimator nhgd --overlap 0"
  "nhgd:kfac, K = 64, G empirical|--estimator nhgd --kfac-g empirical"
  "nhgd:kfac, K = 64, A block-cyclic|--estimator nhgd --kfac-layout distributed"
  "nhgd:kfac, K = 16|--estimator nhgd --efim-samples 16"
  "nhgd:gram, overlap 0|--estimator nhgd --efim-route gram --efim-samples 0 --overlap 0"
  "nhgd:gram, overlap 1|--estimator nhgd --efim-route gram --efim-samples 0 --overlap 1"
  "nhgd:gram, K = 64|--estimator nhgd --efim-route gram --efim-samples 64"
  "nhgd:gram, K = 16|--estimator nhgd --efim-route gram --efim-samples 16"
  "nhgd:accumulate, overlap 0|--estimator nhgd --efim-route accumulate --efim-samples 0 --overlap 0"
  "nhgd:accumulate, overlap 1|--estimator nhgd --efim-route accumulate --efim-samples 0 --overlap 1"
  "nhgd:online, overlap 0|--estimator nhgd --efim-route online --efim-samples 0 --overlap 0"
  "nhgd:online, overlap 1|--estimator nhgd --efim-route online --efim-samples 0 --overlap 1"
)
for r in $(seq 1 "$R"); do
  measure "none:-" "$r" --estimator none
  for v in "${variants[@]}"; do
    # shellcheck disable=SC2086
    measure "${v%%|*}" "$r" ${v#*|}
  done
done
$python - "$csv" >"$out.body" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
keys = []
for r in rows:
    k = (r["estimator"], r["variant"])
    if k not in keys:
        keys.append(k)
def med(k, col):
    return statistics.median(float(r[col]) for r in rows if (r["estimator"], r["variant"]) == k)
base = med(("none", "-"), "seconds_per_outer_step")
for k in keys:
    s, b = med(k, "seconds_per_outer_step"), med(k, "bytes_per_inner_step")
    print(f"| {k[0]} | {k[1]} | {s:.3f} | {s / base:.2f} | {b:.3g} |")
PY
{
  echo "# Overhead of the NHGD estimator over plain inner SGD"
  echo
  machine_record
  echo
  echo "Command: \`bench/overhead.sh $P $R\`. The main job (jobs/hyperclean_fmnist.cfg: d = 7,840,"
  echo "m = 784, C = 10, B = 256, T = 20 inner steps) on $P ranks, every variant in the same run;"
  echo "seconds per outer step = mean of outer steps 2 and 3 (test evaluation off), median over"
  echo "$R repeats; the ratio divides by the same outer step with \`--estimator none\` (inner"
  echo "SGD, validation gradient, J^T u, outer step, no curvature work). Bytes: payload each"
  echo "rank received from the estimator's collectives per inner step. K: \`--efim-samples\`."
  echo "Every variant runs with \`--kfac-refresh 1\` (factors summed and solved at every outer"
  echo "step; the main job refreshes every 5: bench/refresh.sh)."
  echo
  echo "| estimator | variant | s / outer step | ratio to no estimator | bytes / inner step |"
  echo "|---|---|---:|---:|---:|"
  cat "$out.body"
} >"$out"
rm -f "$out.body"
cat "$out"
