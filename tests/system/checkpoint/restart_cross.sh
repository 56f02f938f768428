#!/usr/bin/env bash
# Stop and resume with a sampled cross term (--cross-rows) equals an uninterrupted run bit for
# bit: trajectory (the records of the rows drawn so far travel in the checkpoint) on the linear
# model with minibatches and with the full batch, and on a network; end (drawn afresh from the
# generator); stops inside an inner loop and between outer steps; resume on another rank count
# agrees to 1e-10. usage: restart_cross.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=restart_cross_np$np
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
for case in lin-traj lin-traj-full lin-end mlp-traj; do
  halts="3 10"
  case $case in
  lin-traj) # with K-FAC factors that outlive an inner loop beside the records
    cfg=(--problem hyperclean --estimator nhgd --efim-route kfac --kfac-refresh 2
      --cross-rows trajectory)
    halts="3 7 10" ;;
  lin-traj-full) cfg=(--problem hyperclean --estimator exact --batch 0 --cross-rows trajectory) ;;
  lin-end) cfg=(--problem hyperclean --estimator nhgd --cross-rows end --cross-samples 90) ;;
  mlp-traj) cfg=(--problem mlp-hyperclean --hidden 5,4 --estimator nhgd --cross-rows trajectory) ;;
  esac
  stop_resume "$np" "$other" "$case" "$halts" "${cfg[@]}"
done

# The mode is part of the trajectory: a checkpoint of one is not continued with another.
rm -rf ck
: >log.txt
lin=(--problem hyperclean --estimator nhgd)
run "$np" "${base[@]}" "${lin[@]}" --cross-rows trajectory --output n.h5 --checkpoint-dir ck \
  --halt-after 3
expect_exit 75 $? "trajectory: stop"
run "$np" "${base[@]}" "${lin[@]}" --cross-rows all --output n.h5 --checkpoint-dir ck
expect_exit 1 $? "trajectory: resume with --cross-rows all"
grep -q "was written with --cross-rows trajectory but this run has --cross-rows all" log.txt ||
  { echo "FAIL changed --cross-rows: message"; failures=$((failures + 1)); }

echo "$failures failures"
[ "$failures" -eq 0 ]
