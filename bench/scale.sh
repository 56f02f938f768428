#!/usr/bin/env bash
# Does the outer step grow with the data? The main job's settings (jobs/hyperclean_fmnist.cfg:
# hyperclean, nhgd, T = 20, B = 256) on synthetic 784 x 10 data with n_train = 20,000, 100,000
# and 400,000 rows (validation 5,000 and test 10,000 rows at every size), for each
# --cross-rows mode, all runs of one repeat side by side, the order rotated between repeats.
# Reported per outer step: the step's solver seconds (wall time minus evaluation, outer steps
# 1 to 10, evaluation off) and every stage's seconds (the slowest rank), medians over the
# repeats; the ratio divides each size's step by the step at the smallest size.
# Goal (issue 19): the step at 400,000 rows at most 1.3x the step at 20,000.
# Writes bench/results/scale.csv and scale.md.
# usage: bench/scale.sh [ranks] [repeats] [sizes] [modes]
#        (defaults: 2 5 "20000 100000 400000" "all trajectory end")
source "$(dirname "$0")/common.sh"
P=${1:-2}
R=${2:-5}
sizes=${3:-"20000 100000 400000"}
modes=${4:-"all trajectory end"}
stages="sampling inner_grad allreduce curvature solve hypergrad eval"
steps=10
o=$work/scale.h5
csv=$results/scale.csv

for n in $sizes; do
  scale_data "$n" || exit 1
done

echo "n_train,mode,repeat,seconds_per_outer_step,$(echo $stages | tr ' ' ',')" >"$csv"
runs=()
for n in $sizes; do for m in $modes; do runs+=("$n:$m"); done; done
for r in $(seq 1 "$R"); do
  for i in "${!runs[@]}"; do
    run=${runs[$(((i + r) % ${#runs[@]}))]}
    n=${run%%:*} m=${run#*:}
    sec=$(main_job_step "$P" "$n" $steps "$o" --cross-rows "$m" --cross-samples 5120) || exit 1
    row="$n,$m,$r,$sec"
    for st in $stages; do row="$row,$(stage_seconds "$o" "$st")"; done
    echo "$row" >>"$csv"
  done
done

{
  echo "# Outer-step cost against the training rows"
  echo
  echo "$(machine_record) $P ranks, $R repeats, medians; \`bench/scale.sh $P $R \"$sizes\" \"$modes\"\`."
  echo "Synthetic 784 x 10 hyper-cleaning data (5,000 validation and 10,000 test rows at every"
  echo "size), the main job's settings (jobs/hyperclean_fmnist.cfg) with \`--eval-every 0\` and"
  echo "\`--cross-samples 5120\` for end (as many rows as an inner loop draws). Seconds per outer"
  echo "step are solver seconds over outer steps 1 to $steps; stages are whole-run seconds of the"
  echo "slowest rank divided by the $((steps + 1)) outer steps."
  echo
  $python - "$csv" "$stages" "$((steps + 1))" <<'PY'
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1])))
stages = sys.argv[2].split()
K = int(sys.argv[3])
sizes = sorted({int(r["n_train"]) for r in rows})
modes = list(dict.fromkeys(r["mode"] for r in rows))
def med(n, m, key):
    return st.median(float(r[key]) for r in rows if int(r["n_train"]) == n and r["mode"] == m)
print("| --cross-rows | n_train | solver s / outer step | vs smallest | " +
      " | ".join(stages) + " |")
print("|---|---|---|---|" + "---|" * len(stages))
for m in modes:
    base = med(sizes[0], m, "seconds_per_outer_step")
    for n in sizes:
        s = med(n, m, "seconds_per_outer_step")
        print(f"| {m} | {n:,} | {s:.4f} | {s / base:.2f}x | " +
              " | ".join(f"{med(n, m, x) / K:.4f}" for x in stages) + " |")
PY
} >"$results/scale.md"
cat "$results/scale.md"
