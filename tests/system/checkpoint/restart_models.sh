#!/usr/bin/env bash
# Stop and resume of the network and distillation problems equals an uninterrupted run bit
# for bit (layer-wise kfac on both network forms, with and without --kfac-refresh (factors
# that outlive an inner loop), soba on a relu network, kfac and neumann on distillation, and
# --kfac-refresh on the linear model's kfac route in both layouts of A; stops inside an inner
# loop and between outer steps); resume on another
# rank count agrees to 1e-10; a checkpoint of another network shape or activation is
# refused, naming the option. usage: restart_models.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=restart_models_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
# shellcheck source=../tools/restart_lib.sh
source "$here/tools/restart_lib.sh"
run() { # ranks args...
  local n=$1
  shift
  timeout 300 $mpirun --oversubscribe --allow-run-as-root -n "$n" "$nhgd" "$@" >>log.txt 2>&1
}
"$nhgd" data synth --kind logistic --n-train 301 --n-val 83 --n-test 40 --features 6 \
  --classes 3 --seed 2 --output d.h5 >/dev/null || exit 1
base=(run --data d.h5 --outer-steps 4 --inner-steps 7 --batch 16 --inner-lr 0.5 --log-level 1)
other=$((np == 1 ? 2 : 1))
for case in mlp-kfac mlp-hpo-kfac mlp-refresh mlp-hpo-refresh mlp-grid mlp-soba distill-kfac \
  distill-neumann distill-mlp lin-refresh lin-hpo-refresh lin-grid-refresh; do
  halts="3 10"
  case $case in
  mlp-kfac) cfg=(--problem mlp-hyperclean --hidden 5,4 --estimator nhgd --efim-route kfac) ;;
  mlp-hpo-kfac) cfg=(--problem mlp-hpo --hidden 6 --v-init -3 --estimator nhgd --efim-samples 9) ;;
  mlp-refresh) # outer steps 0 and 2 sum factors, 1 and 3 reuse them: stops inside both
    # kinds of inner loop and at the boundary before a reusing step (7)
    cfg=(--problem mlp-hyperclean --hidden 5,4 --estimator nhgd --efim-route kfac --kfac-refresh 2)
    halts="3 7 10" ;;
  mlp-hpo-refresh) # the damping (exp v) changes in the steps that reuse the factors
    cfg=(--problem mlp-hpo --hidden 6 --v-init -3 --estimator nhgd --kfac-refresh 3)
    halts="3 7 10" ;;
  mlp-grid) # A block-cyclic on every layer (and its decomposition kept across outer steps)
    cfg=(--problem mlp-hpo --hidden 6 --v-init -3 --estimator nhgd --kfac-layout distributed
      --kfac-refresh 2)
    halts="3 7 10" ;;
  mlp-soba) cfg=(--problem mlp-hyperclean --hidden 4 --activation relu --estimator soba) ;;
  distill-kfac) cfg=(--problem distill --distill-per-class 2 --estimator nhgd) ;;
  distill-mlp) cfg=(--problem distill --distill-per-class 2 --distill-model mlp --hidden 4
    --estimator nhgd) ;;
  distill-neumann) cfg=(--problem distill --distill-per-class 3 --estimator neumann --warm-start 0) ;;
  lin-refresh) # the linear model's kfac route: the kept sums and Cholesky factors
    cfg=(--problem hyperclean --estimator nhgd --efim-route kfac --kfac-refresh 2)
    halts="3 7 10" ;;
  lin-hpo-refresh) # per-feature L2 weights: the damping changes, the kept A is refactored
    cfg=(--problem logreg --v-init -2 --estimator nhgd --efim-route kfac --kfac-refresh 3)
    halts="3 7 10" ;;
  lin-grid-refresh) # A block-cyclic: it keeps its sum while it serves
    cfg=(--problem hyperclean --estimator nhgd --efim-route kfac --kfac-layout distributed
      --kfac-refresh 2)
    halts="3 7 10" ;;
  esac
  stop_resume "$np" "$other" "$case" "$halts" "${cfg[@]}"
done

# A network's shape is part of the trajectory: a checkpoint of another shape is refused,
# naming the option.
rm -rf ck
: >log.txt
net=(--problem mlp-hyperclean --estimator nhgd --efim-route kfac)
run "$np" "${base[@]}" "${net[@]}" --hidden 5,4 --output n.h5 --checkpoint-dir ck --halt-after 3
expect_exit 75 $? "network: stop"
run "$np" "${base[@]}" "${net[@]}" --hidden 5 --output n.h5 --checkpoint-dir ck
expect_exit 1 $? "network: resume with another --hidden"
grep -q "was written with --hidden 5,4 but this run has --hidden 5" log.txt ||
  { echo "FAIL changed --hidden: message"; failures=$((failures + 1)); }
run "$np" "${base[@]}" "${net[@]}" --hidden 5,4 --activation relu --output n.h5 --checkpoint-dir ck
expect_exit 1 $? "network: resume with another --activation"
grep -q "was written with --activation tanh but this run has --activation relu" log.txt ||
  { echo "FAIL changed --activation: message"; failures=$((failures + 1)); }
run "$np" "${base[@]}" --problem distill --distill-per-class 2 --output n.h5 --checkpoint-dir ck
expect_exit 1 $? "network checkpoint resumed as distillation"
grep -q "was written with --problem mlp-hyperclean but this run has --problem distill" log.txt ||
  { echo "FAIL changed --problem: message"; failures=$((failures + 1)); }

# The placement of the factors is part of the running state: a checkpoint with A whole is not
# continued with A block-cyclic, and auto follows the checkpoint.
rm -rf ck
: >log.txt
run "$np" "${base[@]}" "${net[@]}" --hidden 5,4 --output n.h5 --checkpoint-dir ck --halt-after 3
expect_exit 75 $? "placement: stop"
run "$np" "${base[@]}" "${net[@]}" --hidden 5,4 --kfac-layout distributed --output n.h5 \
  --checkpoint-dir ck
expect_exit 1 $? "placement: resume with A block-cyclic"
grep -q "has A block-cyclic on layers '000'.*this run on '111'" log.txt ||
  { echo "FAIL changed placement: message"; failures=$((failures + 1)); }
# Auto makes A block-cyclic, largest layer first, when whole factors do not fit the memory
# per rank.
: >log.txt
run "$np" "${base[@]}" --problem mlp-hyperclean --hidden 40,5 --estimator nhgd --log-level 2 \
  --mem-per-rank 0.13 --outer-steps 1 --output m.h5
expect_exit 0 $? "auto placement under a small --mem-per-rank"
grep -q "layer 0: F_l ~= tau G (x) A with A 7 x 7, G" log.txt &&
  grep -q "layer 1: F_l ~= tau G (x) A with A 41 x 41 block-cyclic" log.txt &&
  grep -q "layer 2: F_l ~= tau G (x) A with A 6 x 6, G" log.txt ||
  { echo "FAIL auto placement: log"; grep "layer [0-9]: F_l" log.txt; failures=$((failures + 1)); }

echo "$failures failures"
[ "$failures" -eq 0 ]
