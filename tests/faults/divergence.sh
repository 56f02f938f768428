#!/usr/bin/env bash
# The divergence guard on NP ranks: a validation loss above --divergence-factor times its
# start stops the run with exit 1 and a message naming the outer and inner step and the step
# sizes; the last checkpoint written before stays published and valid.
# usage: divergence.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
dir=faults_divergence_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
export OPENBLAS_NUM_THREADS=1
failures=0
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
echo "$failures failures"
[ "$failures" -eq 0 ]
