#!/usr/bin/env bash
# The divergence guard on NP ranks: a validation loss above --divergence-factor times its
# start stops the run with exit 1 and a message naming the outer and inner step and the step
# size to lower; the last checkpoint written before stays published and valid. With
# --on-divergence halve the run rolls back and halves that step size instead: it recovers, the
# same at 1 and NP ranks, records each rollback, stops when --divergence-retries are used up,
# and a run stopped and resumed around the rollbacks ends bit-identical to one that was not.
# usage: divergence.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=faults_divergence_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
# shellcheck source=../tools/restart_lib.sh
source "$here/tools/restart_lib.sh"
run() { # NP args...: exit code returned, output in log.txt
  local n=$1
  shift
  timeout 120 $mpirun --oversubscribe --allow-run-as-root -n "$n" "$nhgd" "$@" >log.txt 2>&1
}
"$nhgd" data synth --kind ridge --features 10 --n-train 200 --output r.h5 >/dev/null || exit 1
timeout 120 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" run --data r.h5 \
  --problem ridge --inner-steps 5 --batch 32 --outer-steps 4 --inner-lr 2 --log-level 1 \
  --checkpoint-dir ck --output o.h5 >log.txt 2>&1
rc=$?
phrase="diverged at outer step 2, inner step 5"
if [ "$rc" -ne 1 ] || [ "$(grep -c -F "$phrase" log.txt)" -ne 1 ] ||
  ! grep -q -- "--inner-lr (now 2)" log.txt; then
  echo "FAIL guard: exit $rc (want 1), phrase '$phrase' once naming --inner-lr"
  sed 's/^/    /' log.txt | tail -5
  failures=$((failures + 1))
else
  echo "ok   guard: $(grep -o 'error: .*' log.txt | cut -c1-150)"
fi
last=$(ls ck/ckpt-*.h5 2>/dev/null | sort | tail -1)
if [ -z "$last" ] || ! "$nhgd" info "$last" | grep -q "checksum: ok"; then
  echo "FAIL guard: no valid checkpoint kept (${last:-none})"
  failures=$((failures + 1))
else
  echo "ok   guard: the last checkpoint $last is kept and valid"
fi
# Off (0): only a non-finite loss stops the run; this one ends.
timeout 120 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" run --data r.h5 \
  --problem ridge --inner-steps 5 --batch 32 --outer-steps 3 --inner-lr 2 --log-level 1 \
  --divergence-factor 0 --output o.h5 >log.txt 2>&1
rc=$?
[ "$rc" -eq 0 ] && echo "ok   --divergence-factor 0 lets a finite run end" ||
  { echo "FAIL --divergence-factor 0: exit $rc"; failures=$((failures + 1)); }

# --on-divergence halve: the same run recovers after two halvings of --inner-lr at outer step 2.
halve=(run --data r.h5 --problem ridge --inner-steps 5 --batch 32 --outer-steps 6 --inner-lr 2
  --log-level 1 --on-divergence halve --checkpoint-every-inner 2)
rm -rf ck
run "$np" "${halve[@]}" --checkpoint-dir ck --output h.h5 --metrics h.jsonl
expect_exit 0 $? "halve: recovers"
rollbacks=$(grep -c '"rollback"' h.jsonl)
want='{"rollback": {"outer_step": 2, "to_outer_step": 2, "lr": "inner-lr", "old": 2, "new": 1}}'
if [ "$rollbacks" -ne 2 ] || ! grep -q -F "$want" h.jsonl; then
  echo "FAIL halve: $rollbacks rollback lines in the metrics (want 2, the first '$want')"
  failures=$((failures + 1))
elif ! $python - h.h5 <<'PY'; then
import sys, h5py, numpy as np
g = h5py.File(sys.argv[1], "r")["history"]
got = [list(g[c][()]) for c in ("rollback_step", "rollback_lr", "rollback_old_lr", "rollback_new_lr")]
want = [[2, 2], [0, 0], [2, 1], [1, 0.5]]
ok = got == want and np.all(np.isfinite(g["val_loss"][()])) and len(g["val_loss"]) == 6
print("history:", got, "val_loss", g["val_loss"][()])
sys.exit(0 if ok else 1)
PY
  echo "FAIL halve: /history does not record the two rollbacks of --inner-lr at outer step 2"
  failures=$((failures + 1))
else
  echo "ok   halve: two rollbacks of --inner-lr at outer step 2 in the metrics and /history"
fi
# Issue 22 (4): strict JSON (no nan: ridge has no accuracy).
$python "$here/tools/check_jsonl.py" h.jsonl >json.txt ||
  { echo "FAIL halve: the metrics are not strict JSON: $(cat json.txt)"; failures=$((failures + 1)); }
# Issue 22 (10): a rollback keeps the checkpoint it returns to until a newer one exists, and
# the steps it undid are checkpointed again under new names. With a checkpoint at every inner
# step and --keep 3, the one at the start of outer step 2 was pruned before the rollback to it
# removed the newer ones: the folder then held no checkpoint, and a kill there restarted the
# run from outer step 0; the names of the undone steps were written a second time.
rm -rf ck
run "$np" "${halve[@]}" --checkpoint-every-inner 1 --checkpoint-dir ck --output h10.h5 \
  --log-level 2
expect_exit 0 $? "(22.10) halve with a checkpoint at every inner step"
dups=$(grep -o 'checkpoint [^ ]* written' log.txt | sort | uniq -d | awk '{print $2}')
if [ -n "$dups" ] || ! grep -q "checkpoint ck/ckpt-000000000011-r1.h5 written" log.txt; then
  echo "FAIL (22.10) checkpoint names written twice: $(echo $dups)"
  failures=$((failures + 1))
else
  echo "ok   (22.10) $(grep -c 'checkpoint [^ ]* written' log.txt) checkpoints, no name written twice"
fi
same_tol 0 h10.h5 h.h5 "(22.10) a checkpoint at every inner step changes nothing"
# Stopped at the first inner step after the first rollback, and that step's checkpoint removed
# (a kill just before it was published): the run continues from the start of outer step 2.
rm -rf ck
run "$np" "${halve[@]}" --checkpoint-every-inner 1 --checkpoint-dir ck --output a.h5 \
  --halt-after 16
expect_exit 75 $? "(22.10) stop at the first inner step after the rollback"
newest=$(ls ck/ckpt-*.h5 | sort | tail -1)
rm -f "$newest" "$newest.crc32"
run "$np" "${halve[@]}" --checkpoint-dir ck --output a.h5 --log-level 2
expect_exit 0 $? "(22.10) resume"
if ! grep -q "restarted from ck/ckpt-000000000010.h5: outer step 2, inner step 0" log.txt; then
  echo "FAIL (22.10) not continued from the start of outer step 2: $(grep -o 'restarted from.*' log.txt || echo 'started afresh')"
  failures=$((failures + 1))
else
  echo "ok   (22.10) the checkpoint the rollback returned to was kept: $(grep -o 'restarted from [^:]*' log.txt)"
fi
same_tol 0 a.h5 h.h5 "(22.10) continued from it: bit-identical"
if [ "$np" -gt 1 ]; then
  run 1 "${halve[@]}" --output h1.h5
  expect_exit 0 $? "halve on 1 rank"
  same_tol 1e-10 h.h5 h1.h5 "halve: $np ranks and 1 rank agree within 1e-10"
  if ! $python "$here/tools/compare_h5.py" h.h5 h1.h5 0 /history/rollback_step \
    /history/rollback_lr /history/rollback_old_lr /history/rollback_new_lr >cmp.txt 2>&1; then
    echo "FAIL halve: the rollbacks differ between $np ranks and 1 rank"
    failures=$((failures + 1))
  fi
fi
# Stopped inside the first failed attempt (12), the second (17) and after the rollbacks (22),
# stopped again 5 steps later, resumed: bit-identical, rollbacks included.
for halt in 12 17 22; do
  rm -rf ck
  run "$np" "${halve[@]}" --checkpoint-dir ck --output a.h5 --halt-after "$halt"
  expect_exit 75 $? "halve: stop after $halt inner steps"
  run "$np" "${halve[@]}" --checkpoint-dir ck --output a.h5 --halt-after 5
  expect_exit 75 $? "halve: second stop"
  run "$np" "${halve[@]}" --checkpoint-dir ck --output a.h5
  expect_exit 0 $? "halve: resume to the end"
  same_tol 0 a.h5 h.h5 "halve: stops after $halt and 5 more inner steps, bit-identical"
  $python "$here/tools/compare_h5.py" a.h5 h.h5 0 /history/rollback_step /history/rollback_lr \
    /history/rollback_old_lr /history/rollback_new_lr >cmp.txt 2>&1 ||
    { echo "FAIL halve: resumed after $halt steps, the rollbacks differ"; failures=$((failures + 1)); }
done
# The outer step size: v moved too far while the inner loop ran well; the update is taken again
# with --outer-lr halved. Stopped inside the outer step after the first rollback and resumed.
"$nhgd" data synth --kind logistic --features 40 --n-train 50 --n-val 100 --n-test 50 \
  --output l.h5 >/dev/null || exit 1
outer=(run --data l.h5 --problem logreg --inner-steps 10 --batch 16 --outer-steps 4
  --inner-lr 0.5 --outer-lr 4 --divergence-factor 10 --divergence-retries 6 --log-level 1
  --on-divergence halve --checkpoint-every-inner 3)
rm -rf ck
run "$np" "${outer[@]}" --checkpoint-dir ck --output ho.h5 --metrics ho.jsonl
expect_exit 0 $? "halve --outer-lr: recovers"
$python "$here/tools/check_jsonl.py" ho.jsonl >json.txt ||
  { echo "FAIL halve --outer-lr: the metrics are not strict JSON: $(cat json.txt)"; failures=$((failures + 1)); }
if grep -q '"lr": "outer-lr", "old": 4, "new": 2' ho.jsonl; then
  echo "ok   halve --outer-lr: $(grep -c '"outer-lr"' ho.jsonl) rollbacks of --outer-lr"
else
  echo "FAIL halve --outer-lr: no rollback of --outer-lr from 4 to 2 in the metrics"
  failures=$((failures + 1))
fi
rm -rf ck
run "$np" "${outer[@]}" --checkpoint-dir ck --output b.h5 --halt-after 14
expect_exit 75 $? "halve --outer-lr: stop after 14 inner steps"
run "$np" "${outer[@]}" --checkpoint-dir ck --output b.h5
expect_exit 0 $? "halve --outer-lr: resume"
same_tol 0 b.h5 ho.h5 "halve --outer-lr: stopped after 14 inner steps, resumed bit-identical"
# Retries used up: the divergence stops the run as without halve.
rm -rf ck
run "$np" "${halve[@]}" --checkpoint-dir ck --output o.h5 --divergence-retries 1
rc=$?
if [ "$rc" -ne 1 ] || [ "$(grep -c "nhgd: error: diverged at outer step 2" log.txt)" -ne 1 ] ||
  ! grep -q "all 1 rollbacks" log.txt; then
  echo "FAIL retries used up: exit $rc (want 1), one error message after 'all 1 rollbacks'"
  tail -3 log.txt | sed 's/^/    /'
  failures=$((failures + 1))
else
  echo "ok   retries used up: exit 1 after one rollback"
fi
last=$(ls ck/ckpt-*.h5 2>/dev/null | sort | tail -1)
[ -n "$last" ] && "$nhgd" info "$last" | grep -q "checksum: ok" ||
  { echo "FAIL retries used up: no valid checkpoint kept"; failures=$((failures + 1)); }
# Bad values: usage errors.
for bad in "--on-divergence retry" "--divergence-retries -1"; do
  # shellcheck disable=SC2086
  run "$np" "${halve[@]}" --output o.h5 $bad
  rc=$?
  if [ "$rc" -ne 2 ] || ! grep -q -- "${bad%% *}" log.txt; then
    echo "FAIL $bad: exit $rc (want 2 and a message naming ${bad%% *})"
    failures=$((failures + 1))
  else
    echo "ok   $bad: $(grep -m1 -o 'error: .*' log.txt | cut -c1-120)"
  fi
done
# Advice that, followed, fixes the case: each failing run must name what to change (exit 1,
# or 2 for a value no run can use), and the same run with that change must succeed.
"$nhgd" data synth --kind logistic --features 10 --classes 3 --n-train 200 --n-val 100 \
  --n-test 50 --output c.h5 >/dev/null || exit 1
# advise CODE PHRASE "--NAME VALUE" ARGS...: ARGS fail with CODE and PHRASE once; with --NAME
# VALUE they succeed. Both run 3 outer steps of ADVISE_INNER (default 10) inner steps.
advise() {
  local code=$1 phrase=$2 fix=$3 rc size
  shift 3
  size=(--outer-steps 3 --inner-steps "${ADVISE_INNER:-10}" --batch 16 --log-level 1 --output o.h5)
  run "$np" "$@" "${size[@]}"
  rc=$?
  if [ "$rc" -ne "$code" ] || [ "$(grep -c -F -- "$phrase" log.txt)" -ne 1 ]; then
    echo "FAIL advice for $*: exit $rc (want $code), '$phrase' not said once"
    grep "error" log.txt | head -2 | sed 's/^/    /'
    failures=$((failures + 1))
    return
  fi
  # Followed: FIX ("--name value") replaces the value ARGS gave (a bad value is refused
  # before a later one could win), or is added.
  local args=("$@") name=${fix%% *} value=${fix#* } i found=0
  for ((i = 0; i + 1 < ${#args[@]}; ++i)); do
    [ "${args[i]}" = "$name" ] && args[i + 1]=$value && found=1
  done
  [ "$found" = 1 ] || args+=("$name" "$value")
  run "$np" "${args[@]}" "${size[@]}"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "FAIL advice for $*: followed ($fix), the run still fails (exit $rc)"
    grep "error" log.txt | head -2 | sed 's/^/    /'
    failures=$((failures + 1))
  else
    echo "ok   advice for $*: '$phrase'; followed ($fix): exit 0"
  fi
}
# An initial v whose exp overflows: no step size is to blame (it said: lower --inner-lr).
advise 1 "is not finite, which no step size changes: lower the size of --v-init" "--v-init 0" \
  run --data r.h5 --problem ridge --v-init 1e6
# A noise level whose square no double holds: refused as a value (it said: lower --inner-lr).
advise 2 "option --noise-sigma (command line): value 1e-300 is outside the range [1e-150," \
  "--noise-sigma 1" run --data r.h5 --problem ridge --noise-sigma 1e-300
# A step of soba's z or neumann's series far too large (it said: the hypergradient is not
# finite).
advise 1 "lower --soba-rho (now 1e+12)" "--soba-rho 0.05" run --data c.h5 --problem hyperclean \
  --estimator soba --soba-rho 1e12
advise 1 "lower --neumann-eta (now 1e+12)" "--neumann-eta 0.1" run --data c.h5 \
  --problem hyperclean --estimator neumann --neumann-eta 1e12
# exact without a regulariser: the Hessian is singular (the Cholesky failure named nothing).
advise 1 "raise --clean-reg (now 0)" "--clean-reg 1e-3" run --data c.h5 --problem hyperclean \
  --estimator exact --clean-reg 0
# A network whose weights grew under a huge --inner-lr, still finite after 38 inner steps,
# but the activations' Kronecker factor reaches 1e299: the factorisation's products of its
# entries overflow, which no damping mends (it said: raise --efim-damping, false at 1e12).
mlp_kfac=(run --data c.h5 --problem mlp-hyperclean --activation relu --hidden 8 --efim-route kfac)
kfac_phrase="the Kronecker factors are not finite or too large to factorise (the per-sample \
gradients overflowed: theta has grown too large), which no damping mends: lower --inner-lr"
ADVISE_INNER=38 advise 1 "$kfac_phrase" "--inner-lr 0.1" "${mlp_kfac[@]}" --inner-lr 1e4
ADVISE_INNER=38 advise 1 "$kfac_phrase" "--inner-lr 0.1" "${mlp_kfac[@]}" --inner-lr 1e4 \
  --efim-damping 1e12
# A theta grown so large in the inner loop that the hypergradient overflows, before any outer
# step: the inner step size is named (it said only: the hypergradient is not finite).
run "$np" run --data c.h5 --problem logreg --inner-lr 1e12 --outer-steps 3 --inner-steps 20 \
  --batch 16 --log-level 1 --output o.h5
grep -q "nhgd: error: the hypergradient at outer step 0 is not finite.*: lower --inner-lr" log.txt ||
  { echo "FAIL logreg --inner-lr 1e12: not the hypergradient's error naming --inner-lr"; failures=$((failures + 1)); }
ADVISE_INNER=20 advise 1 "lower --inner-lr (now 1e+12)" "--inner-lr 0.1" run --data c.h5 \
  --problem logreg --inner-lr 1e12
# Kronecker systems with entries up to 5e63 (20 inner steps at --inner-lr 1e3): finite and
# factorisable, but the damping is lost in their rounding; it said "raise --efim-damping",
# which at 1e100 lets them factorise and the run diverges still. The inner step size is named:
# by the kfac message at 1 and 2 ranks; at 4 the rows fall otherwise, the factors stay
# factorisable and the divergence guard names it.
kfac_grown="theta has grown too large), which damping only hides: lower --inner-lr"
[ "$np" -ge 4 ] && kfac_grown="lower --inner-lr (now 1000)"
ADVISE_INNER=20 advise 1 "$kfac_grown" "--inner-lr 0.1" "${mlp_kfac[@]}" --inner-lr 1e3
run "$np" "${mlp_kfac[@]}" --inner-lr 1e3 --efim-damping 1e100 --outer-steps 3 --inner-steps 20 \
  --batch 16 --log-level 1 --output o.h5
rc=$?
[ "$rc" -eq 1 ] && echo "ok   kfac: --efim-damping 1e100 does not mend it (exit 1)" ||
  { echo "FAIL kfac: --efim-damping 1e100 ended with exit $rc, want 1"; failures=$((failures + 1)); }
# Which step size a rollback halves is decided by an experiment (the inner loop run again
# with v as before the last outer step), not guessed from the inner loss. distill with a huge
# --inner-lr: every rollback halves --inner-lr and the run recovers (all 30 used to halve
# --outer-lr, down to 9e-11, and the run stopped).
# (4 classes: one image each, one for each of up to 4 ranks.)
"$nhgd" data synth --kind logistic --features 10 --classes 4 --n-train 200 --n-val 100 \
  --n-test 50 --output c4.h5 >/dev/null || exit 1
rm -f d.jsonl
run "$np" run --data c4.h5 --problem distill --inner-lr 1e6 --on-divergence halve \
  --divergence-retries 30 --outer-steps 5 --inner-steps 10 --batch 16 --log-level 1 \
  --output o.h5 --metrics d.jsonl
rc=$?
n_in=$(grep -c '"lr": "inner-lr"' d.jsonl 2>/dev/null)
n_out=$(grep -c '"lr": "outer-lr"' d.jsonl 2>/dev/null)
if [ "$rc" -ne 0 ] || [ "$n_in" -lt 1 ] || [ "$n_out" -ne 0 ]; then
  echo "FAIL blame, distill --inner-lr 1e6: exit $rc, $n_in rollbacks of --inner-lr, $n_out of --outer-lr (want 0, recovered)"
  failures=$((failures + 1))
else
  echo "ok   blame, distill --inner-lr 1e6: $n_in rollbacks, all of --inner-lr; recovered"
fi
# logreg with a huge --outer-lr under sgd: the rollbacks start on --outer-lr; then the outer
# steps taken with the halved one push v's weights to e^38, which a rollback of the last outer
# step cannot undo: the run stops at once with the advice to lower --outer-lr and start again,
# never halving --inner-lr (it halved --inner-lr twice, then --outer-lr 29 times to 4e-6, and
# stopped when the retries ran out). Followed, with half the value it names, the run ends.
run "$np" run --data c.h5 --problem logreg --outer-opt sgd --outer-lr 1e6 --on-divergence halve \
  --divergence-retries 40 --outer-steps 5 --inner-steps 10 --batch 16 --log-level 1 \
  --output o.h5 --metrics o.jsonl
rc=$?
first=$(grep -m1 -o '"lr": "[a-z-]*"' o.jsonl)
n_in=$(grep -c '"lr": "inner-lr"' o.jsonl)
now=$(grep -o "nhgd: error: .*: lower --outer-lr (now [0-9.e+]*) and start the run again" log.txt |
  sed 's/.*(now \([0-9.e+]*\)).*/\1/')
if [ "$rc" -ne 1 ] || [ "$first" != '"lr": "outer-lr"' ] || [ "$n_in" -ne 0 ] || [ -z "$now" ] ||
  grep -q "rollbacks (--divergence-retries) used" log.txt; then
  echo "FAIL blame, logreg sgd --outer-lr 1e6: exit $rc, first rollback $first, $n_in of --inner-lr (want 0), error:"
  grep "error" log.txt | head -1 | cut -c1-300 | sed 's/^/    /'
  failures=$((failures + 1))
else
  half=$($python -c "print(float('$now') / 2)")
  run "$np" run --data c.h5 --problem logreg --outer-opt sgd --outer-lr "$half" \
    --on-divergence halve --outer-steps 5 --inner-steps 10 --batch 16 --log-level 1 --output o.h5
  expect_exit 0 $? "blame, logreg sgd: stopped advising --outer-lr below $now; followed ($half)"
  advise 1 "lower --outer-lr (now 1e+06)" "--outer-lr 0.1" run --data c.h5 --problem logreg \
    --outer-opt sgd --outer-lr 1e6
fi
# Without halve the same experiments decide: distill with a huge --inner-lr is put down to
# --inner-lr (it said: lower --outer-lr, which left the run diverging).
advise 1 "lower --inner-lr (now 1e+06)" "--inner-lr 1000" run --data c4.h5 --problem distill \
  --inner-lr 1e6
echo "$failures failures"
[ "$failures" -eq 0 ]
