#!/usr/bin/env bash
# kill -9 of the whole run at many instants, checkpoint writes included: every next start
# resumes from a valid checkpoint and the run ends with the uninterrupted result, bit for bit.
# usage: kill9.sh NHGD MPIRUN NP [kills]
set -u
nhgd=$1 mpirun=$2 np=$3 kills=${4:-12}
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=kill9_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
# shellcheck source=../tools/restart_lib.sh
source "$here/tools/restart_lib.sh"
RANDOM=$((1234 + np)) # reproducible kill instants
"$nhgd" data synth --kind logistic --n-train 400 --n-val 100 --n-test 50 --features 120 \
  --classes 10 --seed 3 --output d.h5 >/dev/null || exit 1
# d = 1,200 on the online route: each checkpoint holds an 11 MiB matrix, so kills land
# during writes as well as during steps.
cfg=(run --data d.h5 --problem hyperclean --estimator nhgd --efim-route online
  --outer-steps 8 --inner-steps 10 --batch 32 --inner-lr 0.2 --log-level 1)
$mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${cfg[@]}" --output ref.h5 \
  >ref.log 2>&1 || { echo "FAIL reference run"; exit 1; }
pick() { at="0.$((RANDOM % 9 + 1))$((RANDOM % 10))"; }
chaos_loop "$kills" pick $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${cfg[@]}" \
  --output out.h5 --checkpoint-dir ck --checkpoint-every-inner 3 || exit 1
[ "$killed" -ge 3 ] || { echo "FAIL: only $killed kills landed (the run is too short)"; exit 1; }
if grep -q "error" run.log; then
  echo "FAIL: errors in the restarted runs:"
  grep "error" run.log | head
  exit 1
fi
$python "$here/tools/compare_h5.py" out.h5 ref.h5 0 /theta /v /u /history/val_loss \
  /history/hypergrad_norm
