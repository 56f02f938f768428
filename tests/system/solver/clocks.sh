#!/usr/bin/env bash
# The clocks of every record on NP ranks: solver_time (the method's own work) and eval_time
# (measurement) never fall, add up to at most wall_time, eval_time grows exactly at the steps
# with a test evaluation; checkpoint writes count in neither; the metrics lines are strict
# JSON and carry the same values as /history; a stop inside an inner loop and its resume keep
# the clocks going; a checkpoint of format 4 (no clocks, no val_rows, no --val-batch) still
# resumes at the default --val-batch.
# usage: clocks.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=clocks_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
# shellcheck source=../../tools/restart_lib.sh
source "$here/tools/restart_lib.sh"
run() { # ranks args...
  local n=$1
  shift
  timeout 300 $mpirun --oversubscribe --allow-run-as-root -n "$n" "$nhgd" "$@" >>log.txt 2>&1
}
"$nhgd" data synth --kind logistic --n-train 301 --n-val 83 --n-test 40 --features 6 \
  --classes 3 --seed 2 --output d.h5 >/dev/null || exit 1
base=(run --data d.h5 --problem hyperclean --outer-steps 5 --inner-steps 7 --batch 16
  --inner-lr 0.5 --eval-every 2 --log-level 1)

# check OUTPUT METRICS LABEL [resumed]: the clocks of OUTPUT's history and of the metrics lines.
check() {
  if $python - "$@" <<'PY'; then
import json, sys, math
import h5py, numpy as np
out, metrics, label = sys.argv[1:4]
f = h5py.File(out, "r")
h = {k: f["history/" + k][()] for k in f["history"]}
lines = [json.loads(l) for l in open(metrics)]
steps = [l for l in lines if "outer_step" in l]
s, e, w = h["solver_time"], h["eval_time"], h["wall_time"]
K = len(s)
assert K == 5, "%d records" % K
assert np.all(np.isfinite(s)) and np.all(np.isfinite(e)), "a clock is not finite"
assert s[0] > 0 and e[0] >= 0, "clocks at step 0: %g %g" % (s[0], e[0])
assert np.all(np.diff(s) > 0), "solver_time does not grow: %s" % s
assert np.all(np.diff(e) >= 0), "eval_time falls: %s" % e
assert np.all(s + e <= w), "solver_time + eval_time > wall_time: %s %s %s" % (s, e, w)
# --eval-every 2 of 5 steps: the test split after steps 2, 4 and 5 (records 1, 3, 4).
tested = [i for i in range(K) if not math.isnan(h["test_loss"][i])]
assert tested == [1, 3, 4], "test evaluated at %s" % tested
grew = [i for i in range(K) if e[i] > (e[i - 1] if i else 0.0)]
assert grew == tested, "eval_time grew at %s, the test split was evaluated at %s" % (grew, tested)
assert np.all(h["val_rows"] == 83) and np.array_equal(h["val_loss_full"], h["val_loss"]), \
    "without --val-batch val_rows is every row and val_loss_full is val_loss"
# The last metrics lines are this run's records (a resumed run appends).
for r, l in zip(range(K), steps[-K:]):
    assert l["outer_step"] == r
    for key in ("solver_time", "eval_time", "wall_time"):
        assert abs(l[key] - h[key][r]) <= 1e-6, "%s of step %d: %r in metrics, %r in /history" % (
            key, r, l[key], h[key][r])
    assert l["val_rows"] == 83 and l["val_loss_full"] == h["val_loss"][r]
print("ok   %s: solver_time %.4f s, eval_time %.6f s, wall_time %.3f s" % (label, s[-1], e[-1], w[-1]))
PY
    :
  else
    echo "FAIL $3"
    failures=$((failures + 1))
  fi
  $python "$here/tools/check_jsonl.py" "$2" || { echo "FAIL $3: $2 is not strict JSON lines"; failures=$((failures + 1)); }
}

run "$np" "${base[@]}" --output a.h5 --metrics a.jsonl || { echo "FAIL plain run"; exit 1; }
check a.h5 a.jsonl "a run on $np ranks"

# A checkpoint after every inner step: the writes take far longer than the method's work on
# this tiny problem, and count in neither clock.
rm -rf ck
run "$np" "${base[@]}" --output c.h5 --metrics c.jsonl --checkpoint-dir ck \
  --checkpoint-every-inner 1 || { echo "FAIL run with checkpoints"; exit 1; }
check c.h5 c.jsonl "checkpoints after every inner step"
if $python - c.h5 <<'PY'; then
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
stages = f["timing"].attrs["stages"]
stages = (stages.decode() if isinstance(stages, bytes) else stages).split(",")
io = f["timing/min"][stages.index("io")]
s = f["history/solver_time"][-1]
assert s < 0.25 * io, "solver_time %g s is not far below the %g s of checkpoint writes" % (s, io)
print("ok   checkpoint writes (%.3f s) are not solver time (%.4f s)" % (io, s))
PY
  :
else
  echo "FAIL checkpoint writes counted as solver time"
  failures=$((failures + 1))
fi

# Stopped inside an inner loop (after 10 inner steps: outer step 1, inner step 3), resumed.
rm -rf ck
run "$np" "${base[@]}" --output r.h5 --metrics r.jsonl --checkpoint-dir ck --halt-after 10
expect_exit 75 $? "stop inside an inner loop"
run "$np" "${base[@]}" --output r.h5 --metrics r.jsonl --checkpoint-dir ck
expect_exit 0 $? "resume"
check r.h5 r.jsonl "stopped inside an inner loop and resumed"
same_tol 0 r.h5 a.h5 "the resumed run is the uninterrupted one"

# A checkpoint of format 4: no clocks, history rows of 9 columns, no --val-batch in /config.
# It resumes: the same run, every record with val_rows = 83, the clocks unknown (NaN in
# /history, null in the metrics). With --val-batch other than its default it is refused.
rm -rf ck4
run "$np" "${base[@]}" --output o4.h5 --metrics o4.jsonl --checkpoint-dir ck4 --halt-after 10
expect_exit 75 $? "stop for the format-4 case"
$python "$here/tools/old_checkpoint.py" ck4/ckpt-000000000010.h5 4 9 solver_time eval_time \
  config/val-batch || failures=$((failures + 1))
: >log.txt
run "$np" "${base[@]}" --output o4.h5 --checkpoint-dir ck4 --val-batch 5
expect_exit 1 $? "format 4 resumed with --val-batch 5"
if grep -q "was written before option --val-batch existed (as with its default) but this run \
has --val-batch 5" log.txt; then
  echo "ok   format 4 with --val-batch 5: refused, naming the option"
else
  echo "FAIL format 4 with --val-batch 5: no message naming the option"
  tail -3 log.txt | sed 's/^/    /'
  failures=$((failures + 1))
fi
: >log.txt
run "$np" "${base[@]}" --output o4.h5 --metrics o4.jsonl --checkpoint-dir ck4
expect_exit 0 $? "resume from format 4"
# Clocks unknown in every record show that it continued from the checkpoint (a fresh start,
# after skipping it, would have them).
if $python - o4.h5 a.h5 o4.jsonl <<'PY'; then
import sys, json, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert np.array_equal(a["theta"][:], b["theta"][:]), "theta differs from the uninterrupted run"
assert np.all(a["history/val_rows"][:] == 83), "val_rows %s" % a["history/val_rows"][:]
assert np.all(np.isnan(a["history/solver_time"][:])), "solver_time should be unknown"
assert np.all(np.isnan(a["history/eval_time"][:])), "eval_time should be unknown"
last = [json.loads(l) for l in open(sys.argv[3])][-2]
assert last["solver_time"] is None and last["eval_time"] is None, last
PY
  echo "ok   format-4 checkpoint resumed: same theta, val_rows 83, clocks unknown"
else
  echo "FAIL format-4 checkpoint resume"
  failures=$((failures + 1))
fi
$python "$here/tools/check_jsonl.py" o4.jsonl || failures=$((failures + 1))

[ "$failures" -eq 0 ] && echo "all clock checks passed" || echo "$failures failure(s)"
exit $((failures > 0))
