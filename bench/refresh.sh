#!/usr/bin/env bash
# --kfac-refresh on the main job (jobs/hyperclean_fmnist.cfg: Fashion-MNIST hyper-cleaning,
# linear 784 x 10 model, the kfac route with A replicated, K = 64; the job refreshes every 5):
# what reusing the summed factors for R outer steps saves and what it costs in accuracy,
# against the per-step route (R = 1), soba (the fastest baseline to 0.82 in the suite) and no
# estimator.
#   1. accuracy: test accuracy against solver time (the method's own work, without the test
#      evaluations), several seeds, one CSV row per outer step; time to 0.81 and 0.82.
#   2. overhead: seconds per outer step (test evaluation off) of outer steps 1 to 30 (whole
#      periods of R = 3 and R = 10, so each R is timed with its share of summing steps),
#      every method in the same repeat, with the stages' seconds; the ratio divides by
#      --estimator none.
# Writes bench/results/refresh_*.csv and refresh.md.
# usage: bench/refresh.sh [ranks] [seeds] [repeats]   (defaults: 2 "0 1 2 3 4" 5)
source "$(dirname "$0")/common.sh"
NHGD_SUITE_OUT=$results source "$(dirname "$0")/suite/lib.sh"
P=${1:-2}
seeds=${2:-"0 1 2 3 4"}
R=${3:-5}
K=${NHGD_REFRESH_OUTER_STEPS:-30} # outer steps of the accuracy runs
cfg=$root/jobs/hyperclean_fmnist.cfg
declare -A est=(
  [none]="--estimator none"
  [nhgd-r1]="--estimator nhgd --kfac-refresh 1"
  [nhgd-r3]="--estimator nhgd --kfac-refresh 3"
  [nhgd-r5]="--estimator nhgd --kfac-refresh 5"
  [nhgd-r10]="--estimator nhgd --kfac-refresh 10"
  [soba]="--estimator soba --soba-rho 0.1"
)
methods="nhgd-r1 nhgd-r3 nhgd-r5 nhgd-r10 soba"
stages="inner_grad allreduce curvature solve hypergrad eval"
o=$work/refresh.h5

# 1. Accuracy against time.
runs=$results/refresh_runs.csv
accuracy_runs "$runs" "$methods" "$seeds"

# 2. Overhead, every method in the same repeat, the order rotated between repeats.
ovh=$results/refresh_overhead.csv
echo "method,repeat,seconds_per_outer_step,$(echo $stages | tr ' ' ',')" >"$ovh"
data=$(fmnist_data 0 0.5) || exit 1
all=(none $methods)
for r in $(seq 1 "$R"); do
  for i in "${!all[@]}"; do
    m=${all[$(((i + r) % ${#all[@]}))]}
    # shellcheck disable=SC2086
    nhgd_run "$P" run --config "$cfg" --data "$data" ${est[$m]} --outer-steps 31 --eval-every 0 \
      --output "$o"
    row="$m,$r,$(h5get "$o" "(f['history/wall_time'][30] - f['history/wall_time'][0]) / 30")"
    for st in $stages; do row="$row,$(stage_seconds "$o" "$st")"; done
    echo "$row" >>"$ovh"
  done
done

$python - "$runs" "$ovh" "$methods" >"$results/refresh.md.body" <<'PY'
import csv, statistics as st, sys
runs = list(csv.DictReader(open(sys.argv[1])))
ovh = list(csv.DictReader(open(sys.argv[2])))
methods = sys.argv[3].split()
med = st.median
print("## Accuracy (median over seeds)\n")
print("| method | final test accuracy | best test accuracy | solver time to 0.81 (s) | solver time to 0.82 (s) | run seconds |")
print("|---|---:|---:|---:|---:|---:|")
for m in methods:
    rs = [r for r in runs if r["method"] == m]
    seeds = sorted({r["seed"] for r in rs})
    fin, best, wall, hits = [], [], [], {0.81: [], 0.82: []}
    for s in seeds:
        h = sorted((r for r in rs if r["seed"] == s), key=lambda r: int(r["step"]))
        acc = [float(r["test_acc"]) for r in h]
        fin.append(acc[-1]); best.append(max(acc)); wall.append(float(h[-1]["wall_time"]))
        for t in hits:
            hit = [float(r["solver_time"]) for r in h if float(r["test_acc"]) >= t]
            if hit: hits[t].append(hit[0])
    cell = {t: (f"{med(v):.2f} ({len(v)}/{len(seeds)})" if v else f"- (0/{len(seeds)})")
            for t, v in hits.items()}
    print(f"| {m} | {med(fin):.4f} | {med(best):.4f} | {cell[0.81]} | {cell[0.82]} | {med(wall):.2f} |")
stages = ["inner_grad", "allreduce", "curvature", "solve", "hypergrad", "eval"]
print("\n## Overhead per outer step (median over repeats; outer steps 1 to 30, test evaluation off)\n")
print("| method | s / outer step | ratio to none | curvature + solve, s / step | " + " | ".join(stages) + " |")
print("|---|---:|---:|---:|" + "---:|" * len(stages))
base = med(float(r["seconds_per_outer_step"]) for r in ovh if r["method"] == "none")
for m in ["none"] + methods:
    rs = [r for r in ovh if r["method"] == m]
    s = med(float(r["seconds_per_outer_step"]) for r in rs)
    est = med((float(r["curvature"]) + float(r["solve"])) / 31 for r in rs)
    cols = " | ".join(f"{med(float(r[c]) for r in rs) / 31:.4f}" for c in stages)
    print(f"| {m} | {s:.4f} | {s / base:.2f} | {est:.4f} | {cols} |")
PY
{
  echo "# --kfac-refresh on the main job"
  echo
  machine_record
  echo
  echo "Command: \`bench/refresh.sh $P \"$seeds\" $R\`. The main job (jobs/hyperclean_fmnist.cfg:"
  echo "20,000 training rows with half the labels redrawn, linear 784 x 10 model, T = 20 inner"
  echo "steps of B = 256, Adam 0.1, $K outer steps; NHGD on the kfac route, A replicated, the"
  echo "model's G, K = 64 samples per step) on $P ranks. nhgd-rR: \`--kfac-refresh R\` (the job: R = 5), the factors"
  echo "summed and factored in every R-th outer step and reused in between (docs/algorithm.md"
  echo "4.4). soba: rho 0.1. Solver time to a target: solver_time (the method's own work: inner"
  echo "SGD, estimator, validation gradient, hypergradient, outer steps; not the test evaluations,"
  echo "start-up or output) of the first outer step at or above it, median over the seeds that"
  echo "reach it; run seconds: wall time of the whole run. Overhead: wall seconds per"
  echo "outer step with test evaluation off, median over $R repeats with every method in each"
  echo "repeat (order rotated); stage columns: seconds per outer step of the slowest rank (over"
  echo "all 31 steps). none times everything but the estimate (inner SGD, the validation"
  echo "gradient, J^T u with u = 0, the outer step)."
  echo
  cat "$results/refresh.md.body"
} >"$results/refresh.md"
rm -f "$results/refresh.md.body"
echo "bench/refresh.sh: wrote $results/refresh.md"
