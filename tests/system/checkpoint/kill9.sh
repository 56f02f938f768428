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
  --outer-steps 8 --inner-steps 10 --batch 32 --inner-lr 0.2 --log-level 2)
t0=$(date +%s%N)
$mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${cfg[@]}" --output ref.h5 \
  >ref.log 2>&1 || { echo "FAIL reference run"; exit 1; }
# Kill instants: the launch (mpirun, start-up, data; the reference run's wall time less its own
# "timing: total") plus 1 % to 25 % of the run's own time, so that each start gets a little
# further and the kills land in steps and checkpoint writes alike. A fixed range ended every
# start during the launch where that is slow (4 ranks on 2 busy cores: no start ever resumed).
wall_ms=$((($(date +%s%N) - t0) / 1000000))
run_ms=$(awk '/INFO  timing: total/ { printf "%d", $NF * 1000 }' ref.log)
[ -n "$run_ms" ] || { echo "FAIL: the reference run logged no total time"; exit 1; }
launch_ms=$((wall_ms > run_ms ? wall_ms - run_ms : 0))
echo "reference run: $wall_ms ms, of which $run_ms ms in the run"
pick() {
  local ms=$((launch_ms + run_ms * (RANDOM % 25 + 1) / 100))
  at=$(printf "%d.%03d" $((ms / 1000)) $((ms % 1000)))
}
chaos_loop "$kills" pick $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${cfg[@]}" \
  --output out.h5 --checkpoint-dir ck --checkpoint-every-inner 3 || exit 1
[ "$killed" -ge 3 ] || { echo "FAIL: only $killed kills landed (the run is too short)"; exit 1; }
check_chaos_log run.log out.h5 || exit 1
$python "$here/tools/compare_h5.py" out.h5 ref.h5 0 /theta /v /u /history/val_loss \
  /history/hypergrad_norm
