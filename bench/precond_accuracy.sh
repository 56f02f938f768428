#!/usr/bin/env bash
# How exact is the hypergradient when NHGD's curvature preconditions the Hessian system?
# `nhgd hypergrad` at a fixed v (one inner loop from theta = 0, then the estimate), every
# method against `exact` after the same inner loop (the minibatches are a function of the seed
# only): relative error ||h - h_exact|| / ||h_exact|| and cosine, with the Hessian-vector
# products the estimate took (from the work counter: its samples beyond nhgd's, over the rows
# per product). Methods: nhgd (kfac, 0 products); plain cg (cold start) at Q iterations;
# cg --precond nhgd (Q = 0: M^-1 g; Q >= 1: Q + 1 iterations from zero, the first M^-1 g at a line-searched length; Q + 1 products); nbo --precond nhgd --nbo-newton 0
# with the cg solver (the same algorithm as cg --precond nhgd: a consistency check) and with
# the gd solver at step 0.1 (x <- x - 0.1 M^-1 (H x - b), Q products); and the preconditioner's own
# settings: --efim-damping 0.001 and 0.1 and --kfac-g empirical for cg --precond nhgd.
# nbo's Newton step moves theta, so its hypergradient is not comparable with exact's at
# theta_T: it is judged end to end (bench/precond_fmnist.sh); here --nbo-newton 0.
# Problems as the suite's accuracy section: logreg-synthetic (d = 500, 2,000 rows, v = -2,
# batch 64) and hyperclean-fmnist (2,000 rows, d = 7,840, v = 0, batch 128), T = 20, products
# over all training rows (deterministic).
# Writes bench/results/precond_accuracy.csv and precond_accuracy.md.
# usage: bench/precond_accuracy.sh [ranks] [seeds]   (defaults: 2 "0 1 2")
source "$(dirname "$0")/common.sh"
NHGD_SUITE_OUT=$results source "$(dirname "$0")/suite/lib.sh"
P=${1:-2}
seeds=${2:-"0 1 2"}
T=20
csv=$results/precond_accuracy.csv
w=$work/precond_accuracy
mkdir -p "$w"
echo "problem,method,seed,Q,products,solver_time,rel_err,cosine" >"$csv"

# row PREFIX FILE EXACT NHGD ROWS: the CSV row of FILE against EXACT; products from the work
# counter beyond the nhgd run's, over ROWS per product.
row() {
  $python - "$@" <<'PY'
import sys, h5py, numpy as np
prefix, path, exact, base, rows = sys.argv[1:6]
f, g, b = (h5py.File(p, "r") for p in (path, exact, base))
h, x = np.asarray(f["hypergradient"]), np.asarray(g["hypergradient"])
err = np.linalg.norm(h - x) / np.linalg.norm(x)
cos = float(h @ x / (np.linalg.norm(h) * np.linalg.norm(x)))
prod = (f["history/samples"][-1] - b["history/samples"][-1]) / float(rows)
print(f"{prefix},{prod:.0f},{f['history/solver_time'][-1]:.6f},{err:.6e},{cos:.6f}")
PY
}

# problem NAME SEED ROWS OPTIONS...
problem() {
  local name=$1 s=$2 rows=$3
  shift 3
  local common=(hypergrad --seed "$s" --inner-steps $T "$@")
  nhgd_run "$P" "${common[@]}" --estimator exact --output "$w/exact.h5"
  nhgd_run "$P" "${common[@]}" --estimator nhgd --output "$w/nhgd.h5"
  row "$name,nhgd,$s,0" "$w/nhgd.h5" "$w/exact.h5" "$w/nhgd.h5" "$rows" >>"$csv" || exit 1
  local Q m opts
  for m in "cg|1 2 3 6 10 30|--estimator cg --hvp-batch 0 --hvp-warm 0" \
    "cg-precond|0 1 2 3 5 6 10|--estimator cg --hvp-batch 0 --precond nhgd" \
    "nbo-cg-precond|0 1 3 5 10|--estimator nbo --nbo-newton 0 --nbo-solver cg --precond nhgd" \
    "nbo-gd-precond|1 3 6 10|--estimator nbo --nbo-newton 0 --nbo-solver gd --nbo-lr 0.1 --precond nhgd" \
    "cg-precond-damp0.001|1 3 6|--estimator cg --hvp-batch 0 --precond nhgd --efim-damping 0.001" \
    "cg-precond-damp0.1|1 3 6|--estimator cg --hvp-batch 0 --precond nhgd --efim-damping 0.1" \
    "cg-precond-empirical|1 3 6|--estimator cg --hvp-batch 0 --precond nhgd --kfac-g empirical"; do
    IFS='|' read -r label Qs opts <<<"$m"
    for Q in $Qs; do
      local qopt=(--hvp-steps "$Q")
      [[ $opts == *nbo* ]] && qopt=(--nbo-steps "$Q")
      # shellcheck disable=SC2086
      nhgd_run "$P" "${common[@]}" $opts "${qopt[@]}" --output "$w/m.h5"
      row "$name,$label,$s,$Q" "$w/m.h5" "$w/exact.h5" "$w/nhgd.h5" "$rows" >>"$csv" || exit 1
    done
  done
}

for s in $seeds; do
  syn=$work/acc_synth_$s.h5
  [ -f "$syn" ] || "$nhgd" data synth --kind logistic --features 100 --classes 5 --n-train 2000 \
    --n-val 500 --n-test 0 --seed "$s" --output "$syn" >/dev/null || exit 1
  problem logreg-synthetic "$s" 2000 --data "$syn" --problem logreg --batch 64 --inner-lr 0.1 \
    --v-init -2
  fm=$(fmnist_data "$s" 0.5 --n-train 2000) || exit 1
  problem hyperclean-fmnist "$s" 2000 --data "$fm" --problem hyperclean --batch 128 \
    --inner-lr 0.1 --eval-every 0
done

$python - "$csv" "$P" "$seeds" "$(machine_record)" >"$results/precond_accuracy.md" <<'PY'
import csv, sys, statistics
from collections import defaultdict
path, P, seeds, machine = sys.argv[1:5]
rows = list(csv.DictReader(open(path)))
g = defaultdict(list)
for r in rows:
    g[(r["problem"], r["method"], int(r["Q"]))].append(r)
print("# Hypergradient accuracy with NHGD's M as preconditioner\n")
print(machine + "\n")
print(f"`bench/precond_accuracy.sh {P} \"{seeds}\"`. Medians over "
      f"seeds {seeds}: relative error ||h - h_exact|| / ||h_exact|| and cosine against `exact` "
      "after the same inner loop (T = 20), the Hessian-vector products the estimate took "
      "(each over all 2,000 training rows), and the hypergrad run's solver seconds.\n")
for prob in sorted({k[0] for k in g}):
    print(f"## {prob}\n")
    print("| method | Q | products | relative error | cosine | solver s |")
    print("|---|---|---|---|---|---|")
    for (p, m, q), rs in sorted(g.items(), key=lambda kv: (kv[0][1] != "nhgd", kv[0][1], kv[0][2])):
        if p != prob:
            continue
        med = lambda c: statistics.median(float(r[c]) for r in rs)
        print(f"| {m} | {q} | {med('products'):.0f} | {med('rel_err'):.3g} | {med('cosine'):.4f} | "
              f"{med('solver_time'):.3f} |")
    print()
PY
echo "wrote $results/precond_accuracy.md"
