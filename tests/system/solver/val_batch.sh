#!/usr/bin/env bash
# --val-batch K on NP ranks: K = n_val gives the hypergradient and the run of K = 0 (1e-12);
# with K < n_val the run follows the same trajectory on another rank count (1e-10), differs
# from the unsampled one, records val_rows = K and the full validation loss at the first step
# and every --eval-every steps, counts K validation rows of work, and its sampled loss is the
# mean over the rows that an independent Floyd's draw over Philox (tests/tools/philox_ref.py)
# picks; the divergence guard trips on the sampled loss and halve recovers; stops inside an
# inner loop resume bit for bit, and on another rank count within 1e-10. Problems hyperclean (nhgd), ridge (exact, regression targets), distill (soba, whose
# validation rows are the file's training rows). usage: val_batch.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=val_batch_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
# shellcheck source=../../tools/restart_lib.sh
source "$here/tools/restart_lib.sh"
run() { # ranks args...
  local n=$1
  shift
  timeout 300 $mpirun --oversubscribe --allow-run-as-root -n "$n" "$nhgd" "$@" >>log.txt 2>&1
}
# compare TOL A B LABEL DATASETS...: 0 same, 1 differ, 2 could not compare.
compare() {
  local tol=$1 a=$2 b=$3 label=$4
  shift 4
  if $python "$here/tools/compare_h5.py" "$a" "$b" "$tol" "$@" >cmp.txt 2>&1; then
    echo "ok   $label"
  else
    echo "FAIL $label"
    sed 's/^/    /' cmp.txt
    failures=$((failures + 1))
  fi
}
other=$((np == 1 ? 3 : 1))
"$nhgd" data synth --kind logistic --n-train 211 --n-val 61 --n-test 30 --features 6 \
  --classes 3 --seed 8 --output d.h5 >/dev/null || exit 1
"$nhgd" data synth --kind ridge --n-train 150 --n-val 45 --n-test 20 --features 5 \
  --noise 0.5 --seed 3 --output r.h5 >/dev/null || exit 1
T=6 B=16
hc0=(--data d.h5 --problem hyperclean --outer-steps 4 --inner-steps $T --batch $B --inner-lr 0.5
  --seed 4 --eval-every 2 --log-level 1)
hc=("${hc0[@]}" --estimator nhgd)

echo "== K = n_val is K = 0 ($np ranks)"
run "$np" hypergrad "${hc[@]}" --output h0.h5 || failures=$((failures + 1))
run "$np" hypergrad "${hc[@]}" --val-batch 61 --output h61.h5 || failures=$((failures + 1))
compare 1e-12 h61.h5 h0.h5 "hypergradient with --val-batch 61 = every row" /hypergradient /u \
  /history/val_loss
run "$np" run "${hc[@]}" --output full.h5 || failures=$((failures + 1))
run "$np" run "${hc[@]}" --val-batch 61 --output k61.h5 || failures=$((failures + 1))
compare 1e-12 k61.h5 full.h5 "run with --val-batch 61 = every row" /theta /v /u \
  /history/val_loss /history/hypergrad_norm /history/samples

echo "== K = 7 < n_val: $np and $other ranks, the records, the draw"
for case in "hc hyperclean d.h5 nhgd 7" "ridge ridge r.h5 exact 9 --noise-sigma 0.5 --inner-lr 0.05" \
  "ds distill d.h5 soba 11 --distill-per-class 2 --clean-reg 0.05 --inner-lr 0.5"; do
  set -- $case
  tag=$1 problem=$2 data=$3 est=$4 K=$5
  shift 5
  cfg=(--data "$data" --problem "$problem" --estimator "$est" --outer-steps 4 --inner-steps $T
    --batch $B --seed 4 --eval-every 2 --log-level 1 "$@")
  run "$np" run "${cfg[@]}" --val-batch "$K" --output "$tag.np$np.h5" || failures=$((failures + 1))
  run "$other" run "${cfg[@]}" --val-batch "$K" --output "$tag.np$other.h5" ||
    failures=$((failures + 1))
  compare 1e-10 "$tag.np$np.h5" "$tag.np$other.h5" \
    "$problem/$est --val-batch $K: $np ranks = $other ranks" /theta /v /u /history/val_loss \
    /history/hypergrad_norm /history/val_loss_full /history/samples
  run "$np" run "${cfg[@]}" --output "$tag.all.h5" || failures=$((failures + 1))
  if $python - "$tag.np$np.h5" "$tag.all.h5" "$K" "$est" $T $B <<'PY'; then
import math, sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
K, est, T, B = int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
h, g = a["history"], b["history"]
assert list(h["val_rows"][:]) == [K] * 4, "val_rows %s" % h["val_rows"][:]
nval = int(g["val_rows"][0])
# The full loss at the first step and with the test split (steps 2 and 4), NaN elsewhere.
full = h["val_loss_full"][:]
assert [not math.isnan(x) for x in full] == [True, True, False, True], "val_loss_full %s" % full
# Before any outer step both runs are at the same theta: the full loss is the unsampled one.
assert full[0] == g["val_loss"][0], "val_loss_full[0] %r, unsampled val_loss[0] %r" % (
    full[0], g["val_loss"][0])
assert not np.allclose(a["u"][:], b["u"][:], rtol=1e-6), "u is the unsampled one"
# Work: the validation term counts K rows instead of n_val (soba twice: g_val at the start).
per = np.diff(np.concatenate([[0.0], h["samples"][:]]))
per_all = np.diff(np.concatenate([[0.0], g["samples"][:]]))
times = 2 if est == "soba" else 1
assert np.all(per_all - per == times * (nval - K)), "work per step %s, unsampled %s" % (
    per, per_all)
PY
    echo "ok   $problem/$est --val-batch $K: val_rows, val_loss_full, work, u differs"
  else
    echo "FAIL $problem/$est --val-batch $K records"
    failures=$((failures + 1))
  fi
done

# The sampled loss at theta_T of step 0 (the output's theta after one outer step) is the mean
# cross-entropy over the rows of an independent Floyd's draw keyed (seed 4, stream 8, k = 0).
run "$np" run "${hc[@]}" --outer-steps 1 --val-batch 7 --output one.h5 || failures=$((failures + 1))
if $python - one.h5 d.h5 "$here/tools" <<'PY'; then
import sys, h5py, numpy as np
sys.path.insert(0, sys.argv[3])
from philox_ref import below
out, data = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
X, y = data["val/X"][:], data["val/y"][:]
n, K, seed, stream, k = len(y), 7, 4, 8, 0
drawn = set()
for j in range(n - K, n):
    t = below(seed, stream, k, j, 0, j + 1)
    drawn.add(j if t in drawn else t)
rows = sorted(drawn)
m, C = X.shape[1], int(data.attrs["n_classes"])
W = out["theta"][:].reshape(C, m).T  # theta[j + c m] = W[j][c]
z = X[rows] @ W
z -= z.max(axis=1, keepdims=True)
loss = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(K), y[rows]])
got = out["history/val_loss"][0]
assert abs(got - loss) <= 1e-12 * abs(loss), "val_loss %r, over rows %s %r" % (got, rows, loss)
print("ok   the sampled loss is the mean over rows %s of an independent draw (%.15g)" % (rows, got))
PY
  :
else
  echo "FAIL the sampled rows or their mean"
  failures=$((failures + 1))
fi

echo "== the divergence guard on the sampled loss ($np ranks)"
# The ridge run of faults_divergence (--inner-lr 2) diverges at outer step 2 with 10 rows
# drawn too: the message says which loss was checked against which; halve recovers from it.
"$nhgd" data synth --kind ridge --features 10 --n-train 200 --output div.h5 >/dev/null || exit 1
div=(run --data div.h5 --problem ridge --inner-steps 5 --batch 32 --inner-lr 2 --val-batch 10
  --log-level 1)
timeout 300 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${div[@]}" \
  --outer-steps 4 --output dv.h5 >div.txt 2>&1
got=$?
phrase="diverged at outer step 2, inner step 5: the validation loss on the 10 rows drawn"
if [ "$got" -eq 1 ] && [ "$(grep -c -F "$phrase" div.txt)" -eq 1 ] &&
  grep -q "at the start on every row" div.txt; then
  echo "ok   guard: $(grep -o 'error: .*' div.txt | cut -c1-160)"
else
  echo "FAIL guard with --val-batch: exit $got (want 1), '$phrase' once"
  tail -5 div.txt | sed 's/^/    /'
  failures=$((failures + 1))
fi
timeout 300 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${div[@]}" \
  --outer-steps 6 --on-divergence halve --output dv.h5 --metrics dv.jsonl >div.txt 2>&1
got=$?
if [ "$got" -eq 0 ] && grep -q '"rollback"' dv.jsonl; then
  echo "ok   halve with --val-batch: $(grep -c '"rollback"' dv.jsonl) rollbacks, then the run ends"
else
  echo "FAIL halve with --val-batch: exit $got"
  tail -5 div.txt | sed 's/^/    /'
  failures=$((failures + 1))
fi

echo "== stop and resume with --val-batch ($np ranks, then $other)"
base=(run "${hc0[@]}")
stop_resume "$np" "$other" "val-batch" "3 6 8" --val-batch 7 --estimator nhgd
stop_resume "$np" "$other" "val-batch-soba" "4" --val-batch 7 --estimator soba

[ "$failures" -eq 0 ] && echo "all val-batch checks passed" || echo "$failures failure(s)"
exit $((failures > 0))
