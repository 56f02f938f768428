#!/usr/bin/env bash
# What each estimator adds to an outer step, and whether that grows with the data. The main
# job's settings (jobs/hyperclean_fmnist.cfg: hyperclean, T = 20, B = 256, cross rows along the
# trajectory) on the synthetic 784 x 10 sets of bench/scale.sh, for each estimator below, all
# runs of one repeat side by side, the order rotated between repeats. Reported per outer step:
# solver seconds (outer steps 1 to 10, evaluation off), medians over the repeats, the ratio to
# `--estimator none` (inner SGD and the cross pass only, h = grad_v f) at the same size, and
# the ratio of each size's step to the smallest size's.
# Writes bench/results/estimator_cost.csv and estimator_cost.md.
# usage: bench/estimator_cost.sh [ranks] [repeats] [sizes]
#        (defaults: 2 5 "20000 400000")
source "$(dirname "$0")/common.sh"
P=${1:-2}
R=${2:-5}
sizes=${3:-"20000 400000"}
steps=10
o=$work/estimator_cost.h5
csv=$results/estimator_cost.csv

# label|options: the configurations of bench/precond_fmnist.sh's main-job section.
methods=(
  "none|--estimator none"
  "nhgd (kfac)|--estimator nhgd"
  "soba|--estimator soba"
  "cg, Q 10, 2048 rows|--estimator cg --hvp-steps 10 --hvp-batch 2048"
  "nbo gd (defaults)|--estimator nbo"
  "nbo gd, no Newton step|--estimator nbo --nbo-newton 0"
  "nbo cg, Q 3, 2048 rows|--estimator nbo --nbo-solver cg --nbo-steps 3 --nbo-batch 2048"
  "cg --precond nhgd, Q 1, 2048 rows|--estimator cg --precond nhgd --hvp-steps 1 --hvp-batch 2048"
  "cg --precond nhgd, Q 3, 2048 rows|--estimator cg --precond nhgd --hvp-steps 3 --hvp-batch 2048"
)

for n in $sizes; do
  scale_data "$n" || exit 1
done

echo "n_train,method,repeat,seconds_per_outer_step" >"$csv"
runs=()
for n in $sizes; do for i in "${!methods[@]}"; do runs+=("$n:$i"); done; done
for r in $(seq 1 "$R"); do
  for j in "${!runs[@]}"; do
    run=${runs[$(((j + r) % ${#runs[@]}))]}
    n=${run%%:*} i=${run#*:}
    label=${methods[$i]%%|*} opts=${methods[$i]#*|}
    # shellcheck disable=SC2086
    sec=$(main_job_step "$P" "$n" $steps "$o" $opts) || exit 1
    echo "$n,\"$label\",$r,$sec" >>"$csv"
  done
done

{
  echo "# What each estimator adds to an outer step"
  echo
  echo "$(machine_record) $P ranks, $R repeats, medians; \`bench/estimator_cost.sh $P $R \"$sizes\"\`."
  echo "Synthetic 784 x 10 hyper-cleaning data (5,000 validation and 10,000 test rows at every"
  echo "size), the main job's settings (jobs/hyperclean_fmnist.cfg) with \`--eval-every 0\` and"
  echo "the estimator's options below. Seconds per outer step are solver seconds over outer"
  echo "steps 1 to $steps; \"vs none\" divides by \`--estimator none\` (inner SGD, the cross pass and"
  echo "the validation gradient, no inverse) at the same size; \"vs smallest\" divides each size's"
  echo "step by the same method's step at the smallest size."
  echo
  $python - "$csv" "${methods[@]%%|*}" <<'PY'
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1])))
sizes = sorted({int(r["n_train"]) for r in rows})
methods = sys.argv[2:]  # in the order of the script's list
def med(n, m):
    return st.median(float(r["seconds_per_outer_step"]) for r in rows
                     if int(r["n_train"]) == n and r["method"] == m)
head = "| method | " + " | ".join(f"{n:,} rows: s / step | vs none" for n in sizes)
head += "".join(f" | {n:,} vs {sizes[0]:,}" for n in sizes[1:]) + " |"
print(head)
print("|---|" + "---|---|" * len(sizes) + "---|" * (len(sizes) - 1))
for m in methods:
    cells = []
    for n in sizes:
        cells += [f"{med(n, m):.4f}", f"{med(n, m) / med(n, 'none'):.2f}x"]
    cells += [f"{med(n, m) / med(sizes[0], m):.2f}x" for n in sizes[1:]]
    print(f"| {m} | " + " | ".join(cells) + " |")
PY
} >"$results/estimator_cost.md"
cat "$results/estimator_cost.md"
