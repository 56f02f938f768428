#!/usr/bin/env bash
# Bad input through the nhgd program on NP ranks: every case must exit non-zero (2 for usage
# errors, 1 otherwise), print one clear message once, and never hang.
# usage: bad_input.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=bad_input_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
export OPENBLAS_NUM_THREADS=1
failures=0

# expect CODE PHRASE -- nhgd arguments... (a hang: more than $limit seconds, default 120)
expect() {
  local code=$1 phrase=$2
  shift 3
  timeout "${limit:-120}" $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "$@" \
    >out.txt 2>err.txt
  local got=$?
  local count
  count=$(grep -c -F -- "$phrase" err.txt)
  if [ "$got" -eq 124 ]; then
    echo "FAIL (hang) nhgd $*"
    failures=$((failures + 1))
  elif [ "$got" -ne "$code" ] || [ "$count" -ne 1 ]; then
    echo "FAIL nhgd $*: exit $got (want $code), phrase '$phrase' seen $count times (want 1)"
    sed 's/^/    /' err.txt | head -20
    failures=$((failures + 1))
  else
    echo "ok   nhgd $* -> exit $got: $(grep -F -- "$phrase" err.txt | head -1)"
  fi
}

# expect_ok PHRASE -- nhgd arguments...: exit 0, and PHRASE (a warning, or "" for none) seen
# once on the standard error.
expect_ok() {
  local phrase=$1
  shift 2
  timeout 120 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "$@" >out.txt 2>err.txt
  local got=$? count=1
  [ -n "$phrase" ] && count=$(grep -c -F -- "$phrase" err.txt)
  if [ "$got" -ne 0 ] || [ "$count" -ne 1 ]; then
    echo "FAIL nhgd $*: exit $got (want 0), phrase '$phrase' seen $count times (want 1)"
    sed 's/^/    /' err.txt | head -20
    failures=$((failures + 1))
  else
    echo "ok   nhgd $* -> exit 0${phrase:+: $(grep -F -- "$phrase" err.txt | head -1)}"
  fi
}

"$nhgd" data synth --kind logistic --n-train 40 --n-val 20 --n-test 10 --features 5 \
  --output cls.h5 >/dev/null || exit 1
"$nhgd" data synth --kind ridge --n-train 40 --n-val 20 --n-test 10 --features 5 \
  --output reg.h5 >/dev/null || exit 1
"$nhgd" data synth --kind logistic --n-train 10 --n-val 20 --n-test 10 --features 5 \
  --output cls10.h5 >/dev/null || exit 1
printf 'this is not an HDF5 file\n' >garbage.h5
small="--outer-steps 1 --inner-steps 2 --batch 8 --log-level 1"

expect 2 "unknown option --bogus" -- run --bogus 1
expect 2 "option --batch (command line): value -5 is outside the range" -- run --batch -5
expect 2 "option --estimator (command line): 'magic' is not one of" -- run --estimator magic
expect 2 "option --nbo-steps 0: without --precond nhgd" -- run --estimator nbo --nbo-steps 0
expect 2 "option --nbo-lr (command line): value 0 is outside the range (0," -- run --estimator nbo \
  --nbo-lr 0
expect 2 "option --nbo-solver (command line): 'lbfgs' is not one of gd|cg|sgd" -- run \
  --estimator nbo --nbo-solver lbfgs
# Ranges as the option means them: an open end printed open, integers exactly (not "[0, 1]"
# for --adam-beta2 1, nor "[0, 1.04858e+06]" for --grid-rows).
expect 2 "option --adam-beta2 (command line): value 1 is outside the range [0, 1)" -- run \
  --adam-beta2 1
expect 2 "option --inner-lr (command line): value 0 is outside the range (0, 1e+12]" -- run \
  --inner-lr 0
expect 2 "option --grid-rows (command line): value 1048577 is outside the range [0, 1048576]" \
  -- run --grid-rows 1048577
expect 2 "option --efim-samples (command line): value -1 is outside the range [0, 2147483647]" \
  -- run --efim-samples -1
expect 2 "option --inner-lr (command line): 'fast' is not a finite number" -- run --inner-lr fast
expect 2 "unknown command 'fly'" -- fly
# Options files: a NUL byte anywhere is refused (it used to end the line where it stood, the
# rest unread); a long line is read whole (a 10,000-character comment used to be split at
# 8,191 characters and its tail read as an option).
printf 'batch = 8\0 4\n' >nul_value.cfg
head -c 64 /dev/zero >nul_only.cfg
printf 'batch = 8\n\0inner-lr = 5\n' >nul_start.cfg
expect 2 "nul_value.cfg line 1: not a text line (a NUL byte at column 10)" -- run \
  --config nul_value.cfg
expect 2 "nul_only.cfg line 1: not a text line (a NUL byte at column 1)" -- run \
  --config nul_only.cfg
expect 2 "nul_start.cfg line 2: not a text line (a NUL byte at column 1)" -- run \
  --config nul_start.cfg
{
  printf 'batch = 8\n#'
  printf 'x%.0s' $(seq 8190)
  printf 'batch = -5 #'
  printf 'y%.0s' $(seq $((10000 - 8191 - 12)))
  printf '\ninner-steps = 2\n'
} >long_line.cfg
expect_ok "" -- run --config long_line.cfg --data cls.h5 --problem logreg --outer-steps 1 \
  --log-level 1 --output o.h5
expect 2 "unknown data kind" -- data nothing
expect 1 "missing.h5" -- run --data missing.h5 $small
expect 1 "garbage.h5" -- run --data garbage.h5 $small
expect 1 "ridge" -- run --data cls.h5 --problem ridge $small --output o.h5
expect 1 "regression" -- run --data reg.h5 --problem logreg $small --output o.h5
expect 1 "no/such/dir" -- run --data cls.h5 --problem logreg $small --output no/such/dir/o.h5
expect 1 "diverged" -- run --data reg.h5 --problem ridge --inner-lr 1e8 --outer-steps 1 \
  --inner-steps 100 --batch 8 --log-level 1 --output o.h5
$mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" hypergrad --data cls.h5 \
  --problem hyperclean $small --output hc.h5 >/dev/null 2>&1 || { echo "FAIL setup run"; exit 1; }
expect 1 "has 40 entries, this problem needs 5" -- run --data cls.h5 --problem logreg $small \
  --output o.h5 --v-from hc.h5
expect 1 "no dataset /v" -- run --data cls.h5 --problem logreg $small --output o.h5 \
  --v-from reg.h5
# Issue 22 (9): an input that is a named pipe (or any file that is not a regular one) is
# refused at open; reading one used to wait for a writer forever.
mkfifo pipe.h5 pipe.txt
limit=30
expect 1 "pipe.h5: is a named pipe (FIFO), not a regular file" -- run --data pipe.h5 $small
expect 2 "options file pipe.txt: is a named pipe (FIFO)" -- run --config pipe.txt
expect 1 "pipe.h5: is a named pipe (FIFO), not a regular file" -- run --data cls.h5 \
  --problem logreg $small --output o.h5 --v-from pipe.h5
expect 1 "pipe.h5: is a named pipe (FIFO), not a regular file" -- run --data cls.h5 \
  --problem logreg $small --output o.h5 --checkpoint-dir ckfifo --restart pipe.h5
expect 1 "pipe.txt: is a named pipe (FIFO), not a regular file" -- data import-libsvm \
  --input pipe.txt --output imp.h5
expect 1 "pipe.h5: is a named pipe (FIFO), not a regular file" -- data import-idx \
  --images pipe.h5 --labels pipe.h5 --output imp.h5
expect 1 "pipe.h5: not a regular file" -- info pipe.h5
unset limit
# A file that is not there, or a folder, is named as such (it said: not a readable HDF5 file).
expect 1 "missing.h5: no such file (it does not exist)" -- info missing.h5
mkdir -p folder.h5
expect 1 "folder.h5: is a folder, not a file" -- info folder.h5
# Issue 22 (1): no output may name an input of the run or another output, compared as files
# (device and inode), not as text; the inputs stay byte for byte what they were.
cp cls.h5 in.h5 && cp cls.h5 in_saved.h5 && ln -sf in.h5 in_link.h5
printf 'outer-steps = 1\n' >run.cfg && cp run.cfg run_saved.cfg
"$nhgd" data synth --kind logistic --n-train 40 --n-val 20 --n-test 10 --features 5 \
  --output 'in.h5.tmp' >/dev/null || exit 1
guard="run --problem logreg $small"
expect 2 "--output in.h5 is the same file as --data in.h5: the run would overwrite its input" -- \
  $guard --data in.h5 --output in.h5
expect 2 "--output ./in_link.h5 is the same file as --data in.h5" -- $guard --data in.h5 \
  --output ./in_link.h5
expect 2 "--metrics in.h5 is the same file as --data in.h5" -- $guard --data in.h5 \
  --output o.h5 --metrics in.h5
expect 2 "--output run.cfg is the same file as --config run.cfg" -- $guard --data in.h5 \
  --config run.cfg --output run.cfg
expect 2 "--output in.h5.tmp is the same file as --v-from in.h5.tmp" -- $guard --data cls.h5 \
  --v-from in.h5.tmp --output in.h5.tmp
expect 2 "--output in.h5 is written as in.h5.tmp first, which is --data in.h5.tmp" -- $guard \
  --data in.h5.tmp --output in.h5
expect 2 "--output m.jsonl and --metrics m.jsonl are the same file" -- $guard --data in.h5 \
  --output m.jsonl --metrics m.jsonl
expect 2 "--checkpoint-dir in.h5 is the same file as --data in.h5" -- $guard --data in.h5 \
  --output o.h5 --checkpoint-dir in.h5
mkdir -p ckg
expect 2 "--metrics ckg/LATEST is inside --checkpoint-dir ckg under a name its checkpoints use" \
  -- $guard --data in.h5 --output o.h5 --metrics ckg/LATEST --checkpoint-dir ckg
printf '1 1:0.5\n0 2:0.5\n1 1:0.1\n0 2:0.3\n1 1:0.2\n' >svm.txt && cp svm.txt svm_saved.txt
expect 1 "--output svm.txt is the same file as --input svm.txt" -- data import-libsvm \
  --input svm.txt --output svm.txt
expect 1 "--output in.h5 is the same file as --images in.h5" -- data import-idx \
  --images in.h5 --labels in.h5 --output in.h5
if cmp -s in.h5 in_saved.h5 && cmp -s run.cfg run_saved.cfg && cmp -s svm.txt svm_saved.txt; then
  echo "ok   every input is intact"
else
  echo "FAIL an input was overwritten"
  failures=$((failures + 1))
fi
# Issue 22 (4): the metrics are strict JSON lines: null where a value is missing (no test
# evaluation at this step, no accuracy for regression), never nan.
timeout 120 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" run --data reg.h5 \
  --problem ridge $small --outer-steps 3 --eval-every 2 --output o.h5 --metrics m.jsonl \
  >out.txt 2>&1
got=$?
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
if [ "$got" -eq 0 ] && $python "$here/tools/check_jsonl.py" m.jsonl >json.txt &&
  [ "$(grep -c '"test_loss": null' m.jsonl)" -eq 1 ] && grep -q '"val_acc": null' m.jsonl; then
  echo "ok   metrics are strict JSON lines with null for the missing values"
else
  echo "FAIL metrics: exit $got, not strict JSON or no null: $(cat json.txt)"
  head -3 m.jsonl | sed 's/^/    /'
  failures=$((failures + 1))
fi
# Issue 22 (12): a --checkpoint-dir that is a regular file is found at start-up, before the
# data is read and a step is taken.
printf 'not a folder\n' >plain.txt
expect 1 "checkpoint folder plain.txt: is a file, not a folder" -- run --data cls.h5 \
  --problem logreg $small --output o.h5 --checkpoint-dir plain.txt --log-level 2
if grep -q "outer 1/\|data cls.h5:" out.txt; then
  echo "FAIL --checkpoint-dir plain.txt: found only after the data was read"
  failures=$((failures + 1))
fi
# The folder's own names belong to the user when nhgd did not write them: a MANIFEST that is not
# nhgd's stops the run at start-up and stays as it was; a LOCK that is not nhgd's is locked but
# never written, and a LOCK that is a link is refused (it would lock and write through it).
rm -rf ckm && mkdir ckm && printf 'include README\n' >ckm/MANIFEST && cp ckm/MANIFEST manifest.ref
expect 1 "ckm/MANIFEST is not a manifest of nhgd" -- run --data cls.h5 --problem logreg $small \
  --output o.h5 --checkpoint-dir ckm
cmp -s ckm/MANIFEST manifest.ref || {
  echo "FAIL the user's MANIFEST in the checkpoint folder was changed"
  failures=$((failures + 1))
}
rm -rf ckl && mkdir ckl && printf 'my lock\n' >ckl/LOCK && cp ckl/LOCK lock.ref
expect_ok "" -- run --data cls.h5 --problem logreg $small --output o.h5 --checkpoint-dir ckl
cmp -s ckl/LOCK lock.ref || {
  echo "FAIL the user's LOCK in the checkpoint folder was overwritten"
  failures=$((failures + 1))
}
rm -rf ckk2 && mkdir ckk2 && printf 'elsewhere\n' >lock.target && ln -s ../lock.target ckk2/LOCK
expect 1 "cannot create ckk2/LOCK" -- run --data cls.h5 --problem logreg $small --output o.h5 \
  --checkpoint-dir ckk2
grep -q '^elsewhere$' lock.target || {
  echo "FAIL a LOCK link was written through"
  failures=$((failures + 1))
}
expect 2 "option --features (command line)" -- data synth --features 0 --output x.h5
# The importers' limit in the environment is read as strictly as an option (atof read "abc" as
# 0 and "-5" as -5, both "no limit"); a NUL byte inside a LIBSVM line is refused (it ended the
# line there, and the rest went unread).
printf '1 1:1 2:3\n2 1:2\n1 2:1\n2 1:0.5 2:1\n1 1:3\n2 2:2\n1 1:1\n2 2:5\n' >s.svm
NHGD_MAX_DENSE_MB=abc expect 1 "environment NHGD_MAX_DENSE_MB: 'abc' is not a finite number" -- \
  data import-libsvm --input s.svm --output s.h5
NHGD_MAX_DENSE_MB=-5 expect 1 "environment NHGD_MAX_DENSE_MB: value -5 is outside the range \
(0, 1e+12]" -- data import-libsvm --input s.svm --output s.h5
NHGD_MAX_DENSE_MB=abc expect 1 "environment NHGD_MAX_DENSE_MB: 'abc' is not a finite number" -- \
  run --data cls.h5 --problem logreg $small --output o.h5
printf '1 1:1 2:3\n2 1:2\0 2:7\n1 2:1\n2 1:0.5 2:1\n1 1:3\n2 2:2\n1 1:1\n2 2:5\n' >nul.svm
expect 1 "nul.svm: line 2: a NUL byte at column 6" -- data import-libsvm --input nul.svm \
  --output s.h5
expect 2 "option --halt-after needs --checkpoint-dir" -- run --data cls.h5 --halt-after 3
expect 2 "option --grid-rows: 3 does not divide the number of ranks" -- run --data cls.h5 \
  --problem logreg --estimator exact --grid-rows 3 $small --output o.h5
expect 2 "beta = 0 divides by zero" -- run --data cls.h5 --efim-mode ema --efim-beta 0
expect 2 "needs beta in (0, 1)" -- run --data cls.h5 --efim-mode ema --efim-beta 1
expect 2 "problem ridge has none" -- run --data reg.h5 --problem ridge --efim-route kfac
expect 2 "which --kron 0 turns off" -- run --data cls.h5 --efim-route kfac --kron 0
expect 2 "option --kfac-g (command line): 'fisher' is not one of" -- run --kfac-g fisher
# Networks: shapes that cannot be built are usage errors found before any data is read.
expect 2 "option --hidden: the list of hidden widths is empty" -- run --data cls.h5 \
  --problem mlp-hyperclean --hidden ""
expect 2 "option --hidden '0': every width must be a whole number from 1" -- run --data cls.h5 \
  --problem mlp-hpo --hidden 0
expect 2 "option --hidden '8,0': every width must be a whole number from 1" -- run \
  --problem mlp-hyperclean --hidden 8,0
expect 2 "option --hidden '8,': the list ends with a comma" -- run --problem mlp-hpo --hidden 8,
expect 2 "option --activation (command line): 'sigmoid' is not one of" -- run \
  --problem mlp-hpo --activation sigmoid
expect 2 "option --mlp-hvp (command line): 'fisher' is not one of" -- run --mlp-hvp fisher
expect 1 "option --distill-per-class 5: 15 synthetic images are more than the 10 training rows" \
  -- run --data cls10.h5 --problem distill --distill-per-class 5 $small --output o.h5
expect 2 "option --distill-per-class (command line): value 0 is outside the range" -- run \
  --problem distill --distill-per-class 0
expect 1 "exact: problem mlp-hyperclean has no per-sample Hessian factors" -- run --data cls.h5 \
  --problem mlp-hyperclean --hidden 1000 --estimator exact $small --output o.h5
expect 2 "option --hidden '0,4': every width must be a whole number" -- run --problem distill \
  --distill-model mlp --hidden 0,4
expect 2 "option --kfac-refresh (command line): value 0 is outside the range" -- run --kfac-refresh 0
# --precond: a choice; --hvp-steps 0 only where it means NHGD's u (cg --precond nhgd).
expect 2 "option --precond (command line): 'foo' is not one of none|nhgd" -- run --precond foo
expect 2 "option --hvp-steps 0: estimator cg needs at least one conjugate-gradient iteration" -- \
  run --data cls.h5 --estimator cg --hvp-steps 0 $small --output o.h5
expect 2 "option --hvp-steps 0: estimator neumann needs at least one term of the series" -- \
  run --data cls.h5 --estimator neumann --precond nhgd --hvp-steps 0 $small --output o.h5
# An option the run does not read is named once, with what it applies to and the value that
# rules it out (from the scopes of its block): --hidden without a network, an estimator's
# option with another estimator, one given in an options file.
expect_ok "option --hidden (command line) is ignored: it applies to --problem mlp-hyperclean or \
mlp-hpo, or to --problem distill with --distill-model mlp, and this run has --problem ridge" -- \
  run --data reg.h5 --problem ridge --hidden abc $small --output o.h5
expect_ok "option --activation (command line) is ignored: it applies to --problem mlp-hyperclean \
or mlp-hpo, or to --problem distill with --distill-model mlp, and this run has --problem distill, \
--distill-model linear" -- run --data cls.h5 --problem distill --distill-per-class 2 \
  --activation relu $small --output o.h5
printf 'soba-rho = 0.5\n' >soba.cfg
expect_ok "option --soba-rho (soba.cfg line 1) is ignored: it applies to --estimator soba, and \
this run has --estimator cg" -- run --config soba.cfg --data cls.h5 --problem logreg \
  --estimator cg $small --output o.h5
# --precond and the nhgd block with the estimators that read them or not.
expect_ok "option --precond (command line) is ignored: it applies to --estimator cg or nbo, and \
this run has --estimator nhgd" -- run --data cls.h5 --precond nhgd $small --output o.h5
expect_ok "option --efim-damping (command line) is ignored: it applies to --estimator nhgd, or to \
--estimator cg or nbo with --precond nhgd, and this run has --estimator cg, --precond none" -- \
  run --data cls.h5 --estimator cg --efim-damping 0.1 $small --output o.h5
expect_ok "option --hvp-warm (command line) is ignored: it applies to --estimator cg with \
--precond none, and this run has --precond nhgd" -- run --data cls.h5 --estimator cg \
  --precond nhgd --hvp-warm 0 $small --output o.h5
# ... and nothing is said of the nhgd block's options that cg reads through --precond nhgd.
expect_ok "" -- run --data cls.h5 --estimator cg --precond nhgd --efim-damping 0.1 \
  --kfac-refresh 2 --hvp-steps 0 $small --output o.h5
if grep -q "is ignored" err.txt; then
  echo "FAIL cg --precond nhgd: an option of the nhgd block called ignored:"
  grep "is ignored" err.txt | sed 's/^/    /'
  failures=$((failures + 1))
fi
# Not bad input: like --kfac-g, the other routes ignore --kfac-refresh, and say so (a log
# line on standard output).
timeout 120 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" run --data cls.h5 \
  --problem hyperclean --efim-route gram --kfac-refresh 2 $small --log-level 2 --output o.h5 \
  >out.txt 2>err.txt
got=$?
if [ "$got" -eq 0 ] && [ "$(grep -c -F "nhgd: --kfac-refresh 2 applies to the kfac route only; route \
gram sums and solves" out.txt)" -eq 1 ]; then
  echo "ok   --kfac-refresh 2 on route gram: exit 0 and one line saying it is ignored"
else
  echo "FAIL --kfac-refresh 2 on route gram: exit $got, or no single line saying it is ignored"
  failures=$((failures + 1))
fi
# --cross-rows: samples in range, options that go together, one message and exit 2 everywhere
expect 2 "option --cross-samples (command line): value 0 is outside the range" -- run \
  --cross-rows end --cross-samples 0
expect 2 "option --cross-samples 41: the training split has only 40 rows to draw from" -- run \
  --data cls.h5 $small --cross-rows end --cross-samples 41 --output o.h5
expect 2 "option --cross-rows trajectory cannot go with --cross-mode average" -- run \
  --data cls.h5 --cross-rows trajectory --cross-mode average --output o.h5
expect 2 "option --cross-rows trajectory needs inner steps to draw rows from" -- run \
  --data cls.h5 --cross-rows trajectory --inner-steps 0 --output o.h5
expect 2 "option --cross-rows (command line): 'rows' is not one of all|trajectory|end" -- run --cross-rows rows
expect_ok "option --cross-rows end changes nothing: problem logreg" -- run --data cls.h5 $small \
  --problem logreg --cross-rows end --cross-samples 41 --output o.h5
# --val-batch: at most the rows the outer loss averages over (distill: the file's 40 training
# rows), a usage error found once the data is read, on every rank.
expect 2 "option --val-batch 21: the outer loss of problem hyperclean averages over 20 validation \
rows" -- run --data cls.h5 --problem hyperclean --val-batch 21 $small --output o.h5
expect 2 "option --val-batch 41: the outer loss of problem distill averages over 40 validation \
rows" -- run --data cls.h5 --problem distill --distill-per-class 2 --val-batch 41 $small \
  --output o.h5
expect 2 "option --val-batch (command line): value -1 is outside the range [0, 2147483647]" -- \
  run --val-batch -1
expect 2 "option --efim-samples 300: a step has only 256 per-sample gradients" -- run --data cls.h5 \
  --efim-samples 300
# With --batch 0 a step has a per-sample gradient per training row: more is a usage error too,
# found once the data is read (it used to be found by the estimator, exit 1).
expect 2 "option --efim-samples 50: a step has only 40 per-sample gradients (--batch 0: one per \
training row)" -- run --data cls.h5 $small --batch 0 --efim-samples 50 --output o.h5
# A kfac checkpoint taken inside an inner loop continues only in its own layout of A.
rm -rf ckk
$mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" run --data cls.h5 --efim-route kfac \
  --kfac-layout replicated --checkpoint-dir ckk --halt-after 1 $small --output o.h5 >/dev/null 2>&1
[ $? -eq 75 ] || { echo "FAIL setup of the kfac layout case"; failures=$((failures + 1)); }
expect 1 "continue with --kfac-layout replicated" -- run --data cls.h5 --efim-route kfac \
  --kfac-layout distributed --checkpoint-dir ckk $small --output o.h5
"$nhgd" data synth --kind ridge --n-train 40 --n-val 20 --n-test 0 --features 300 \
  --output wide.h5 >/dev/null || exit 1
expect 1 "the smallest rank count that fits is 14" -- run --data wide.h5 --problem ridge \
  --estimator nhgd --efim-route accumulate --mem-per-rank 0.15 $small --output o.h5
expect 1 "no rank count fits" -- run --data wide.h5 --problem ridge --estimator nhgd \
  --mem-per-rank 0.001 $small --output o.h5
# --mem-per-rank binds every estimator, not only nhgd's routes (exact used to form a Hessian
# of any size, cg to allocate its vectors, whatever the limit).
expect 1 "exact: the Hessian and its buffers need" -- run --data wide.h5 --problem ridge \
  --estimator exact --mem-per-rank 0.15 $small --output o.h5
expect 1 "MiB are available (--mem-per-rank); no rank count fits (every rank holds them whole)" \
  -- run --data wide.h5 --problem ridge --estimator cg --mem-per-rank 0.001 $small --output o.h5

echo "$failures failures"
[ "$failures" -eq 0 ]
