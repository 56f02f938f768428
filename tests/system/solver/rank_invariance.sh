#!/usr/bin/env bash
# `nhgd run` follows the same trajectory on 1 and NP ranks (1e-10 relative on theta, v, u and
# the history) for every built-in problem, with the exact and the NHGD estimators (and cg on a
# network, cg preconditioned by NHGD's M, nbo with each solver). usage: rank_invariance.sh
# NHGD MPIRUN NP
set -u
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3 # Debian's h5py lives there
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=rank_invariance_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
export OPENBLAS_NUM_THREADS=1
run() { $mpirun --oversubscribe --allow-run-as-root -n "$@"; }
"$nhgd" data synth --kind ridge --n-train 301 --n-val 97 --n-test 50 --features 9 \
  --noise 0.5 --seed 3 --output ridge.h5 >/dev/null || exit 1
"$nhgd" data synth --kind logistic --n-train 203 --n-val 61 --n-test 40 --features 6 \
  --classes 4 --seed 4 --output logistic.h5 >/dev/null || exit 1
status=0
for case in "ridge ridge.h5 exact --noise-sigma 0.5 --inner-lr 0.05" \
  "logreg logistic.h5 exact --inner-lr 0.5" "hyperclean logistic.h5 exact --inner-lr 0.5" \
  "ridge ridge.h5 nhgd --noise-sigma 0.5 --inner-lr 0.05" \
  "logreg logistic.h5 nhgd --inner-lr 0.5 --efim-route online" \
  "hyperclean logistic.h5 nhgd --inner-lr 0.5 --efim-route gram --cross-mode average" \
  "logreg logistic.h5 nhgd --inner-lr 0.5 --efim-route kfac" \
  "hyperclean logistic.h5 nhgd --inner-lr 0.5 --efim-route kfac --kfac-layout distributed" \
  "hyperclean logistic.h5 nhgd --inner-lr 0.5 --efim-route kfac --kfac-g empirical" \
  "hyperclean logistic.h5 nhgd --inner-lr 0.5 --efim-route kfac --cross-rows trajectory" \
  "hyperclean logistic.h5 exact --inner-lr 0.5 --cross-rows end --cross-samples 77" \
  "mlp-hyperclean logistic.h5 nhgd --inner-lr 0.5 --hidden 5,4 --cross-rows trajectory" \
  "mlp-hyperclean logistic.h5 nhgd --inner-lr 0.5 --hidden 5 --cross-rows end --cross-samples 60" \
  "logreg logistic.h5 nhgd --inner-lr 0.5 --v-init -2 --efim-route kfac --kfac-refresh 2" \
  "mlp-hyperclean logistic.h5 nhgd --inner-lr 0.5 --hidden 5,4 --efim-route kfac" \
  "mlp-hpo logistic.h5 nhgd --inner-lr 0.5 --hidden 7 --v-init -3 --activation relu" \
  "mlp-hpo logistic.h5 nhgd --inner-lr 0.5 --hidden 6,3 --v-init -3 --kfac-refresh 2" \
  "mlp-hyperclean logistic.h5 nhgd --inner-lr 0.5 --hidden 5,4 --kfac-layout distributed" \
  "mlp-hyperclean logistic.h5 nhgd --inner-lr 0.5 --hidden 3 --efim-route gram" \
  "mlp-hyperclean logistic.h5 exact --inner-lr 0.5 --hidden 4 --mlp-hvp gauss-newton" \
  "mlp-hpo logistic.h5 cg --inner-lr 0.5 --hidden 4 --v-init -2 --mlp-hvp gauss-newton" \
  "hyperclean logistic.h5 cg --inner-lr 0.5 --precond nhgd --hvp-steps 3 --efim-route kfac" \
  "ridge ridge.h5 cg --noise-sigma 0.5 --inner-lr 0.05 --precond nhgd --hvp-steps 2" \
  "distill logistic.h5 nhgd --inner-lr 0.5 --distill-per-class 2 --clean-reg 0.05" \
  "distill logistic.h5 soba --inner-lr 0.5 --distill-per-class 3 --warm-start 0" \
  "hyperclean logistic.h5 nbo --inner-lr 0.5 --nbo-batch 50" \
  "logreg logistic.h5 nbo --inner-lr 0.5 --nbo-solver sgd --nbo-lr 0.2 --nbo-batch 40" \
  "mlp-hpo logistic.h5 nbo --inner-lr 0.5 --hidden 4 --v-init -2 --mlp-hvp gauss-newton --nbo-solver gd --nbo-lr 0.3" \
  "distill logistic.h5 nhgd --inner-lr 0.5 --distill-per-class 2 --distill-model mlp --hidden 4"; do
  set -- $case
  problem=$1 data=$2 estimator=$3
  shift 3
  common=(run --problem "$problem" --data "$data" --estimator "$estimator" --outer-steps 4
    --inner-steps 15 --batch 32 --seed 7 --log-level 1 "$@")
  tag=$problem.$estimator.$(echo "$*" | tr -cd 'a-z')
  run 1 "$nhgd" "${common[@]}" --output "$tag.np1.h5" || { status=1; continue; }
  run "$np" "$nhgd" "${common[@]}" --output "$tag.np$np.h5" || { status=1; continue; }
  echo "== $problem with $estimator: 1 vs $np ranks"
  $python "$here/tools/compare_h5.py" "$tag.np$np.h5" "$tag.np1.h5" 1e-10 \
    /theta /v /u /history/val_loss /history/hypergrad_norm /history/test_loss || status=1
  if [ "$problem" != ridge ] && [[ "$*" != *kfac* ]] && [[ $problem != mlp* ]] &&
    [ "$problem" != distill ]; then
    # The Kronecker-structured curvature and the generic per-sample form give the same run.
    run "$np" "$nhgd" "${common[@]}" --kron 0 --output "$tag.factored.h5" || status=1
    echo "== $problem with $estimator: Kronecker (1 rank) vs generic form ($np ranks)"
    $python "$here/tools/compare_h5.py" "$tag.factored.h5" "$tag.np1.h5" 1e-10 \
      /theta /v /history/val_loss /history/hypergrad_norm || status=1
  fi
done
exit $status
