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
# 0.3 to 1.4 s after the launch (times SCALE): start-up, steps and writes; each start gets a
# little further, so that the kills are spread over the whole run.
scale=1
pick() {
  local tenths=$((RANDOM % 12 + 3))
  at=$(awk -v t="$tenths" -v s="$scale" 'BEGIN { printf "%.2f", t / 10 * s }')
}
# A round is a whole chaotic run from no checkpoint. On a fast machine the late instants can
# let a run finish after fewer than 3 kills: then another round follows with the instants
# halved, until 3 kills have landed in all (each round must end bit-identical on its own).
total=0
for round in 1 2 3 4; do
  rm -rf ck out.h5 run.log
  chaos_loop "$kills" pick $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" \
    "${cfg[@]}" --output out.h5 --checkpoint-dir ck --checkpoint-every-inner 3 || exit 1
  total=$((total + killed))
  if [ "$killed" -gt 0 ]; then
    # A round whose kills all fell before the first checkpoint resumes nothing: its starts
    # must still be clean.
    if grep -q "INFO  restarted from " run.log; then
      check_chaos_log run.log out.h5 || exit 1
    elif grep -Eq "error|ERROR" run.log; then
      echo "FAIL: errors in the restarted runs:" && grep -E "error|ERROR" run.log | head && exit 1
    fi
    same_tol 0 out.h5 ref.h5 "round $round: after $killed kills the run ends bit-identical to the uninterrupted one"
    $python "$here/tools/compare_h5.py" out.h5 ref.h5 0 /history/rollback_step /history/rollback_lr \
      /history/rollback_old_lr /history/rollback_new_lr >cmp.txt 2>&1 ||
      { echo "FAIL the rollbacks differ"; cat cmp.txt; failures=$((failures + 1)); }
  fi
  [ "$total" -ge 3 ] && break
  echo "round $round: $killed kills landed ($total in all), another round with the instants halved"
  scale=$(awk -v s="$scale" 'BEGIN { print s / 2 }')
done
[ "$total" -ge 3 ] || { echo "FAIL: only $total kills landed in $round rounds"; exit 1; }
[ "$failures" -eq 0 ]
