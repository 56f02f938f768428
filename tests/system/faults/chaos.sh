#!/usr/bin/env bash
# kill -9 chaos on NP ranks: a run with checkpoints and --on-divergence halve rollbacks is
# killed at random instants (seeded by NHGD_CHAOS_SEED, default 12; the seed is printed) and
# started again each time until it ends; it must end bit-identical to an uninterrupted run,
# rollbacks included, and no start may report an error.
# usage: chaos.sh NHGD MPIRUN NP [kills]
set -u
nhgd=$1 mpirun=$2 np=$3 kills=${4:-8}
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=faults_chaos_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
# shellcheck source=../tools/restart_lib.sh
source "$here/tools/restart_lib.sh"
seed=${NHGD_CHAOS_SEED:-12}
echo "seed $seed (set NHGD_CHAOS_SEED to change it)"
RANDOM=$seed
"$nhgd" data synth --kind ridge --features 300 --n-train 3000 --n-val 500 --n-test 100 \
  --output r.h5 >/dev/null || exit 1
# d = 300 on the accumulate route (a 0.7 MiB matrix in every checkpoint inside an inner loop);
# --inner-lr 2 diverges and is halved at outer steps 1 and 5, so kills land before, during and after
# the rollbacks as well as during checkpoint writes.
cfg=(run --data r.h5 --problem ridge --estimator nhgd --efim-route accumulate --inner-steps 10
  --batch 64 --outer-steps 30 --inner-lr 2 --on-divergence halve --log-level 2)
$mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${cfg[@]}" --output ref.h5 \
  >ref.log 2>&1 || { echo "FAIL reference run"; tail -3 ref.log; exit 1; }
grep -q "rollback 1 of" ref.log || { echo "FAIL the reference run has no rollback"; exit 1; }
# 0.3 to 1.4 s after the launch: start-up, steps and writes; each start gets a little further,
# so that the kills are spread over the whole run.
pick() {
  local tenths=$((RANDOM % 12 + 3))
  at="$((tenths / 10)).$((tenths % 10))"
}
chaos_loop "$kills" pick $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${cfg[@]}" \
  --output out.h5 --checkpoint-dir ck --checkpoint-every-inner 3 || exit 1
[ "$killed" -ge 3 ] || { echo "FAIL: only $killed kills landed"; exit 1; }
check_chaos_log run.log out.h5 || exit 1
same_tol 0 out.h5 ref.h5 "after $killed kills the run ends bit-identical to the uninterrupted one"
$python "$here/tools/compare_h5.py" out.h5 ref.h5 0 /history/rollback_step /history/rollback_lr \
  /history/rollback_old_lr /history/rollback_new_lr >cmp.txt 2>&1 ||
  { echo "FAIL the rollbacks differ"; cat cmp.txt; failures=$((failures + 1)); }
[ "$failures" -eq 0 ]
