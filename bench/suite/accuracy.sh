#!/usr/bin/env bash
# Suite section 3: hypergradient accuracy. `nhgd hypergrad` at a fixed v with every estimator
# at a range of budgets, each against `exact` after the same inner loop (the minibatches are
# a function of the seed only, so the inner iterates agree): relative error and cosine, with
# the wall time, the solver time (the hypergradient's own work, without start-up and output)
# and the work counter of the run. Writes accuracy.csv.
source "$(dirname "$0")/../common.sh"
source "$(dirname "$0")/lib.sh"
seeds=$(pick "0 1 2" "0")
Ts=$(pick "5 10 20 40 80" "5 20")
Qcg=$(pick "1 2 5 10 20 50" "2 10")
Qneu=$(pick "2 5 10 20 50 100" "5 20")
csv=$out/accuracy.csv
echo "problem,method,seed,param,value,samples,wall_time,solver_time,rel_err,cosine" >"$csv"
o=$work/suite_acc.h5

# compare PREFIX FILE EXACT-FILE: CSV row of the run FILE against the exact hypergradient.
compare() {
  $python - "$2" "$3" "$1" <<'PY'
import sys, h5py, numpy as np
f, g = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
h, x = np.asarray(f["hypergradient"]), np.asarray(g["hypergradient"])
err = np.linalg.norm(h - x) / np.linalg.norm(x)
cos = float(h @ x / (np.linalg.norm(h) * np.linalg.norm(x)))
hist = f["history"]
print(f"{sys.argv[3]},{hist['samples'][-1]:.0f},{hist['wall_time'][-1]:.6f},"
      f"{hist['solver_time'][-1]:.6f},{err:.6e},{cos:.6f}")
PY
}

# problem NAME SEED HVP-BATCH OPTIONS...: every estimator and budget on one problem; cg and
# neumann sample HVP-BATCH rows for their Hessian (0: all rows).
problem() {
  local name=$1 s=$2 hb=$3
  shift 3
  local T Q
  for T in $Ts; do
    nhgd_run "$P" hypergrad --seed "$s" "$@" --inner-steps "$T" --estimator exact --output "$work/exact_$T.h5"
    local v
    for v in "nhgd|" "nhgd-kfac-empirical|--efim-route kfac --kfac-g empirical" \
      "nhgd-kfac-k16|--efim-route kfac --efim-samples 16" \
      "nhgd-kfac-k64|--efim-route kfac --efim-samples 64" \
      "nhgd-gram|--efim-route gram" "nhgd-gram-k16|--efim-route gram --efim-samples 16" \
      "nhgd-gram-k64|--efim-route gram --efim-samples 64"; do
      # shellcheck disable=SC2086
      nhgd_run "$P" hypergrad --seed "$s" "$@" --inner-steps "$T" --estimator nhgd ${v#*|} \
        --output "$o"
      compare "$name,${v%%|*},$s,inner_steps,$T" "$o" "$work/exact_$T.h5" >>"$csv" || exit 1
    done
    nhgd_run "$P" hypergrad --seed "$s" "$@" --inner-steps "$T" --estimator soba \
      --soba-rho 0.1 --output "$o"
    compare "$name,soba,$s,inner_steps,$T" "$o" "$work/exact_$T.h5" >>"$csv" || exit 1
  done
  [ -f "$work/exact_20.h5" ] || nhgd_run "$P" hypergrad --seed "$s" "$@" --inner-steps 20 \
    --estimator exact --output "$work/exact_20.h5"
  for Q in $Qcg; do
    nhgd_run "$P" hypergrad --seed "$s" "$@" --inner-steps 20 --estimator cg --hvp-steps "$Q" \
      --hvp-batch "$hb" --output "$o"
    compare "$name,cg,$s,hvp_steps,$Q" "$o" "$work/exact_20.h5" >>"$csv" || exit 1
  done
  for Q in $Qneu; do
    nhgd_run "$P" hypergrad --seed "$s" "$@" --inner-steps 20 --estimator neumann \
      --hvp-steps "$Q" --hvp-batch "$hb" --neumann-eta 0.1 --output "$o"
    compare "$name,neumann,$s,hvp_steps,$Q" "$o" "$work/exact_20.h5" >>"$csv" || exit 1
  done
  rm -f "$work"/exact_*.h5
}

for s in $seeds; do
  syn=$work/acc_synth_$s.h5
  [ -f "$syn" ] || "$nhgd" data synth --kind logistic --features 100 --classes 5 --n-train 2000 \
    --n-val 500 --n-test 0 --seed "$s" --output "$syn" >/dev/null || exit 1
  problem logreg-synthetic "$s" 256 --data "$syn" --problem logreg --batch 64 --inner-lr 0.1 --v-init -2
  # All 2,000 rows for the Hessian here: a sample of 256 rows spans at most 2,304 of the
  # d = 7,840 directions, with only r = 1e-3 on the rest.
  fm=$(fmnist_data "$s" 0.5 --n-train 2000) || exit 1
  problem hyperclean-fmnist "$s" 0 --data "$fm" \
    --problem hyperclean --batch 128 --inner-lr 0.1 --eval-every 0
done
echo "setting.accuracy=nhgd hypergrad (one inner loop from theta = 0, then the estimate) at a fixed v, $P ranks, seeds $seeds; relative error ||h - h_exact|| / ||h_exact|| of the hypergradient against exact after the same inner loop. logreg-synthetic: nhgd data synth --kind logistic, 100 features, 5 classes (d = 500), 2,000 train and 500 validation rows, v = -2, batch 64, inner step 0.1. hyperclean-fmnist: the hyper-cleaning protocol on 2,000 train rows (d = 7,840), v = 0 (every weight 0.5), batch 128, inner step 0.1. nhgd is the library default (kfac, G from the model, every sample); nhgd-kfac-empirical uses G = sum w r r^T; nhgd-kfac-k16 and -k64 feed the factors with 16 or 64 of each step's samples; nhgd-gram is the full empirical Fisher (--efim-route gram), nhgd-gram-k16 and -k64 the same with 16 or 64 of each step's samples (--efim-samples). Budgets: the nhgd variants and soba (--soba-rho 0.1) vary the inner steps T in {$Ts} (nhgd's Fisher then holds N = T B per-sample gradients); cg (cold start) varies its iterations in {$Qcg} and neumann (--neumann-eta 0.1) its terms in {$Qneu}, both after T = 20 inner steps, with --hvp-batch 256 on logreg-synthetic and all rows (--hvp-batch 0, deterministic) on hyperclean-fmnist, where a 256-row sample leaves most of the 7,840 directions with only r = 1e-3 of curvature. samples = the run's work counter (inner SGD, validation gradient, the estimator's Hessian-vector products)." >>"$out/meta.txt"
