#!/usr/bin/env bash
# Stop and resume with the baseline estimators (cg with stochastic products and warm start,
# stochastic neumann, soba, cg preconditioned by NHGD's M on the kfac route, with
# --kfac-refresh 2 and on the gram route, and nbo with its Newton step by cg, by sgd and
# preconditioned) equals an uninterrupted run bit for bit: a stop inside the inner loop of
# outer step 1 resumed from the estimator's saved state, and a resume from the checkpoint
# between outer steps 0 and 1, where the state carried across outer steps (cg's warm start,
# soba's z, nbo's u_prev) comes from the engine's u, the Newton-corrected theta from the
# checkpoint's theta, and the kept K-FAC factors of --kfac-refresh from the checkpoint. The
# preconditioned cg stopped inside an inner loop on NP ranks and finished on another rank
# count agrees to 1e-10. (A stop costs Open MPI about two seconds:
# one per estimator, so the resume between outer steps uses the reference run's checkpoint.)
# usage: restart.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=baselines_restart_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
# shellcheck source=../tools/restart_lib.sh
source "$here/tools/restart_lib.sh"
run_on() { # ranks args...
  local n=$1
  shift
  timeout 120 $mpirun --oversubscribe --allow-run-as-root -n "$n" "$nhgd" "$@" >>log.txt 2>&1
}
run() { run_on "$np" "$@"; } # args...
same() { same_tol 0 "$@"; } # a b label
"$nhgd" data synth --kind logistic --n-train 301 --n-val 83 --n-test 40 --features 6 \
  --classes 3 --seed 2 --output d.h5 >/dev/null || exit 1
# 5 inner steps per outer step: checkpoint position = 5 k + t.
base=(run --data d.h5 --problem hyperclean --outer-steps 4 --inner-steps 5 --batch 16
  --inner-lr 0.5 --seed 3 --log-level 1)
for est in cg neumann soba cg-precond cg-precond-refresh cg-precond-gram nbo nbo-sgd nbo-precond; do
  pre=(--estimator cg --precond nhgd --hvp-steps 3 --hvp-batch 24)
  case $est in
  cg) cfg=(--estimator cg --hvp-steps 6 --hvp-batch 24 --hvp-warm 1) ;;
  cg-precond) cfg=("${pre[@]}") ;;
  cg-precond-refresh) cfg=("${pre[@]}" --kfac-refresh 2) ;;
  cg-precond-gram) cfg=("${pre[@]}" --efim-route gram) ;;
  neumann) cfg=(--estimator neumann --hvp-steps 6 --hvp-batch 24 --neumann-eta 0.2) ;;
  soba) cfg=(--estimator soba --soba-rho 0.1) ;;
  nbo) cfg=(--estimator nbo --nbo-solver cg --nbo-steps 3 --nbo-batch 24) ;;
  nbo-sgd) cfg=(--estimator nbo --nbo-solver sgd --nbo-steps 4 --nbo-lr 0.1 --nbo-batch 24) ;;
  nbo-precond) cfg=(--estimator nbo --nbo-solver cg --precond nhgd --nbo-steps 2 --nbo-batch 24 --kfac-refresh 2) ;;
  esac
  # The reference also leaves a checkpoint after every outer step (position 5 k).
  rm -rf ck ref_ck
  run "${base[@]}" "${cfg[@]}" --output ref_$est.h5 --checkpoint-dir ref_ck --keep 10 ||
    { echo "FAIL reference $est"; failures=$((failures + 1)); continue; }
  run "${base[@]}" "${cfg[@]}" --output a.h5 --checkpoint-dir ck --halt-after 7
  expect_exit 75 $? "$est: stop inside outer step 1"
  run "${base[@]}" "${cfg[@]}" --output a.h5 --checkpoint-dir ck
  expect_exit 0 $? "$est: resume inside outer step 1"
  same a.h5 ref_$est.h5 "$est: stopped inside outer step 1 and resumed: bit-identical on $np ranks"
  run "${base[@]}" "${cfg[@]}" --output b.h5 --checkpoint-dir ref_ck \
    --restart ref_ck/ckpt-000000000005.h5
  expect_exit 0 $? "$est: resume between outer steps 0 and 1"
  same b.h5 ref_$est.h5 "$est: resumed between outer steps 0 and 1: bit-identical on $np ranks"
done
# The running state of M (partial K-FAC sums per rank) continues on another rank count.
other=$((np == 1 ? 2 : 1))
cfg=(--estimator cg --precond nhgd --hvp-steps 3 --hvp-batch 24)
rm -rf ck
run "${base[@]}" "${cfg[@]}" --output c.h5 --checkpoint-dir ck --halt-after 7
expect_exit 75 $? "cg-precond: stop inside outer step 1 on $np ranks"
run_on "$other" "${base[@]}" "${cfg[@]}" --output c.h5 --checkpoint-dir ck
expect_exit 0 $? "cg-precond: resume on $other ranks"
same_tol 1e-10 c.h5 ref_cg-precond.h5 \
  "cg-precond: stopped inside outer step 1 on $np ranks, finished on $other: within 1e-10"
echo "$failures failures"
[ "$failures" -eq 0 ]
