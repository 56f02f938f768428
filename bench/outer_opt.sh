#!/usr/bin/env bash
# Which outer step for a sparse hypergradient? The main job (jobs/hyperclean_fmnist.cfg) with
# the settings named below, several seeds of the Fashion-MNIST protocol, 30 outer steps, all
# settings of a seed side by side: solver seconds (evaluation off the clock) and outer steps
# to 0.81 and 0.82 test accuracy, and the final test accuracy, medians over the seeds. This is
# what chose the main job's --cross-rows, --outer-opt, --outer-lr and --val-batch (issue 19:
# soonest to 0.82 in solver time with final accuracy no lower than 0.8226 - 0.002).
# Writes bench/results/outer_opt_runs.csv and outer_opt.md.
# usage: bench/outer_opt.sh [ranks] [seeds] [settings]
#        (defaults: 2 "0 1 2 3 4" and every setting below)
source "$(dirname "$0")/common.sh"
NHGD_SUITE_OUT=$results source "$(dirname "$0")/suite/lib.sh"
P=${1:-2}
seeds=${2:-"0 1 2 3 4"}
K=30
cfg=$root/jobs/hyperclean_fmnist.cfg
declare -A est=(
  [all-adam-0.1]="--cross-rows all --outer-opt adam --outer-lr 0.1 --val-batch 0 --kfac-refresh 5"
  [all-sgd-5000]="--cross-rows all --outer-opt sgd --outer-lr 5000 --val-batch 0 --kfac-refresh 5"
  [traj-adam-0.1]="--cross-rows trajectory --outer-opt adam --outer-lr 0.1 --val-batch 0 --kfac-refresh 5"
  [traj-adam-0.3]="--cross-rows trajectory --outer-opt adam --outer-lr 0.3 --val-batch 0 --kfac-refresh 5"
  [traj-lazy-0.8]="--cross-rows trajectory --outer-opt lazy-adam --outer-lr 0.8 --val-batch 0 --kfac-refresh 5"
  [traj-sgd-3000]="--cross-rows trajectory --outer-opt sgd --outer-lr 3000 --val-batch 0 --kfac-refresh 5"
  [traj-sgd-5000]="--cross-rows trajectory --outer-opt sgd --outer-lr 5000 --val-batch 0 --kfac-refresh 5"
  [end-sgd-5000]="--cross-rows end --cross-samples 5120 --outer-opt sgd --outer-lr 5000 --val-batch 0 --kfac-refresh 5"
  [traj-sgd-5000-vb1024]="--cross-rows trajectory --outer-opt sgd --outer-lr 5000 --val-batch 1024 --kfac-refresh 5"
  [traj-sgd-5000-vb2048]="--cross-rows trajectory --outer-opt sgd --outer-lr 5000 --val-batch 2048 --kfac-refresh 5"
  [traj-sgd-5000-vb1024-r10]="--cross-rows trajectory --outer-opt sgd --outer-lr 5000 --val-batch 1024 --kfac-refresh 10"
  [traj-sgd-8000-vb1024]="--cross-rows trajectory --outer-opt sgd --outer-lr 8000 --val-batch 1024 --kfac-refresh 5"
  [traj-sgd-5000-vb512]="--cross-rows trajectory --outer-opt sgd --outer-lr 5000 --val-batch 512 --kfac-refresh 5"
)
settings=${3:-"all-adam-0.1 all-sgd-5000 traj-adam-0.1 traj-adam-0.3 traj-lazy-0.8 traj-sgd-3000 traj-sgd-5000 end-sgd-5000 traj-sgd-5000-vb1024 traj-sgd-5000-vb2048 traj-sgd-5000-vb1024-r10 traj-sgd-8000-vb1024 traj-sgd-5000-vb512"}
runs=$results/outer_opt_runs.csv
accuracy_runs "$runs" "$settings" "$seeds"

{
  echo "# Outer step for a sparse hypergradient (main job)"
  echo
  echo "$(machine_record) $P ranks; \`bench/outer_opt.sh $P \"$seeds\"\`."
  echo "Main job (jobs/hyperclean_fmnist.cfg) with the settings of each row, $K outer steps,"
  echo "seeds $seeds of the Fashion-MNIST protocol; medians over the seeds. Time is solver time"
  echo "(evaluation off the clock). A seed that never reaches the level counts as never."
  echo
  $python - "$runs" "$settings" <<'PY'
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1])))
settings = sys.argv[2].split()
def first(sel, level, key):
    for r in sel:
        if float(r["test_acc"]) >= level:
            return float(r[key])
    return float("inf")
def fmt(x, f="{:.2f}"):
    return "never" if x == float("inf") else f.format(x)
print("| setting | solver s to 0.81 | solver s to 0.82 | steps to 0.82 | final test acc | "
      "solver s / step |")
print("|---|---|---|---|---|---|")
for s in settings:
    seeds = sorted({r["seed"] for r in rows if r["method"] == s})
    t81, t82, k82, fin, per = [], [], [], [], []
    for sd in seeds:
        sel = [r for r in rows if r["method"] == s and r["seed"] == sd]
        t81.append(first(sel, 0.81, "solver_time"))
        t82.append(first(sel, 0.82, "solver_time"))
        k82.append(first(sel, 0.82, "step"))
        fin.append(float(sel[-1]["test_acc"]))
        per.append(float(sel[-1]["solver_time"]) / len(sel))
    print(f"| {s} | {fmt(st.median(t81))} | {fmt(st.median(t82))} | "
          f"{fmt(st.median(k82), '{:.0f}')} | {st.median(fin):.4f} | {st.median(per):.4f} |")
PY
} >"$results/outer_opt.md"
cat "$results/outer_opt.md"
