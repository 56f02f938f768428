#!/usr/bin/env bash
# The work counter /history/samples (per-sample gradients and Hessian-vector products used
# so far, all ranks together) against its formula for every estimator, on NP ranks, and
# across a stop and resume. With K outer steps of T inner steps of batch B, n training and
# n_v validation rows, one outer step costs T B (SGD) + n_v (validation gradient) plus
#   nhgd 0 (it reuses SGD's per-sample gradients)    exact n (one Hessian factor per row)
#   cg   (Q + 1) b or Q b (warm or cold start)        neumann (Q - 1) b
#   cg --precond nhgd (Q + 1) b (every solve starts from M^-1 g)
#   soba T B + n_v (a Hessian-vector product per inner step, g_val at the loop's start)
#   nbo  b + 2 Q b with gd (the Newton gradient on its minibatch, then per step a product for
#        each of the two systems)
# usage: work_counter.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3 # Debian's h5py lives there
dir=work_counter_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
export OPENBLAS_NUM_THREADS=1
run() { timeout 300 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "$@" --log-level 1; }
"$nhgd" data synth --kind logistic --features 6 --classes 3 --n-train 300 --n-val 40 \
  --n-test 50 --seed 2 --output d.h5 >/dev/null || exit 1
K=3 T=4 B=16 Q=5 b=32 n=300 nv=40
common=(--data d.h5 --problem logreg --outer-steps $K --inner-steps $T --batch $B
  --inner-lr 0.1 --outer-lr 0.05 --hvp-steps $Q --hvp-batch $b --neumann-eta 0.05)
failures=0
check() { # name file expected-per-step
  local got
  got=$($python -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r'); print(' '.join('%.0f' % x for x in f['history/samples']))" "$2")
  local want="" k
  for ((k = 1; k <= K; ++k)); do want="$want $((k * $3))"; done
  want=${want# }
  if [ "$got" = "$want" ]; then
    echo "ok   $1: samples $got"
  else
    echo "FAIL $1: samples '$got', want '$want'"
    failures=$((failures + 1))
  fi
}
base=$((T * B + nv))
for est in nhgd exact cg neumann soba; do
  run run "${common[@]}" --estimator "$est" --output "$est.h5" || {
    echo "FAIL $est: run failed"
    failures=$((failures + 1))
    continue
  }
done
check nhgd nhgd.h5 $base
check exact exact.h5 $((base + n))
# cg warm-starts from the previous u: the first solve starts from u = 0 (Q products), the
# later ones need one product more for the initial residual.
got=$($python -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r'); print(' '.join('%.0f' % x for x in f['history/samples']))" cg.h5)
want="$((base + Q * b)) $((2 * base + Q * b + (Q + 1) * b)) $((3 * base + Q * b + 2 * (Q + 1) * b))"
if [ "$got" = "$want" ]; then echo "ok   cg: samples $got"; else
  echo "FAIL cg: samples '$got', want '$want'"
  failures=$((failures + 1))
fi
check neumann neumann.h5 $((base + (Q - 1) * b))
if run run "${common[@]}" --estimator cg --precond nhgd --output cgp.h5; then
  check "cg --precond nhgd" cgp.h5 $((base + (Q + 1) * b))
else
  echo "FAIL cg --precond nhgd: run failed"
  failures=$((failures + 1))
fi
check soba soba.h5 $((base + T * B + nv))
run run "${common[@]}" --estimator nbo --nbo-solver gd --nbo-steps $Q --nbo-batch $b \
  --nbo-lr 0.05 --output nbo.h5 || { echo "FAIL nbo: run failed"; failures=$((failures + 1)); }
check nbo nbo.h5 $((base + b + 2 * Q * b))
# Stopped inside an inner loop and resumed: the counter continues where it stopped.
run run "${common[@]}" --estimator soba --checkpoint-dir ck --halt-after 6 --output r.h5
[ $? -eq 75 ] || { echo "FAIL soba stop: exit code"; failures=$((failures + 1)); }
run run "${common[@]}" --estimator soba --checkpoint-dir ck --output r.h5 || failures=$((failures + 1))
check "soba stopped and resumed" r.h5 $((base + T * B + nv))
# A checkpoint of format 1 (no counter, 8 history columns) still resumes: the run ends where
# an uninterrupted one does, and the counter is unknown (NaN) from there on. The checkpoints
# the resumed run writes hold it unknown too, and a run continues from them (they used to be
# skipped as damaged, "attribute samples nan is not a count", back to the format-1 one).
run run "${common[@]}" --estimator nhgd --checkpoint-dir ck1 --halt-after 8 --output old.h5
[ $? -eq 75 ] || { echo "FAIL nhgd stop for the format-1 case: exit code"; failures=$((failures + 1)); }
$python "$here/tools/old_checkpoint.py" ck1/ckpt-000000000008.h5 1 8 samples \
  solver_time eval_time || failures=$((failures + 1))
run run "${common[@]}" --estimator nhgd --checkpoint-dir ck1 --halt-after 2 --output old.h5
[ $? -eq 75 ] || { echo "FAIL nhgd stop after the format-1 resume: exit code"; failures=$((failures + 1)); }
timeout 300 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" run "${common[@]}" \
  --estimator nhgd --checkpoint-dir ck1 --output old.h5 >resume.log 2>&1 || failures=$((failures + 1))
if grep -q "restarted from ck1/ckpt-000000000010.h5: outer step 2, inner step 2" resume.log &&
  ! grep -q "skipping checkpoint" resume.log; then
  echo "ok   the checkpoint written after the format-1 resume (counter unknown) resumes"
else
  echo "FAIL the checkpoint written after the format-1 resume was not resumed from:"
  grep -E "restarted|skipping" resume.log | sed 's/^/    /'
  failures=$((failures + 1))
fi
if $python - old.h5 nhgd.h5 <<'PY'; then
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert np.array_equal(a["theta"][:], b["theta"][:]), "theta differs from the uninterrupted run"
assert np.all(np.isnan(a["history/samples"][:])), "counter should be unknown after format 1"
assert np.array_equal(a["history/val_loss"][:], b["history/val_loss"][:]), "history differs"
assert a.attrs["max_rss_mib"] > 0, "no peak memory recorded"
PY
  echo "ok   format-1 checkpoint resumed: same theta and history, counter NaN"
else
  echo "FAIL format-1 checkpoint resume"
  failures=$((failures + 1))
fi
[ "$failures" -eq 0 ] && echo "all work-counter checks passed" || echo "$failures failure(s)"
exit $((failures > 0))
