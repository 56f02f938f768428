#!/usr/bin/env bash
# Fault-injection sweep (builds with -DNHGD_FAULTS=ON): a run resumed from a checkpoint, with
# the N-th HDF5 call or allocation made to fail on one rank, for every N up to the number of
# such calls in the run (strided to at most NHGD_SWEEP_MAX values per kind and rank). Each
# faulty run must end on every rank within seconds, with exit 0 or with exit 1 and one
# message; then a run without faults must continue from what is left and end bit-identical to
# an uninterrupted run (so the last good checkpoint stayed intact). NHGD_SWEEP_SEED (default 0)
# shifts the strided values: CI sweeps fewer values per run, a different subset each commit.
# usage: sweep.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=faults_sweep_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
# shellcheck source=../tools/restart_lib.sh
source "$here/tools/restart_lib.sh"
max=${NHGD_SWEEP_MAX:-60}
seed=${NHGD_SWEEP_SEED:-0}
run() { # args...: exit code in $rc, output in log.txt
  : >log.txt
  timeout 30 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "$@" >log.txt 2>&1
  rc=$?
}
"$nhgd" data synth --kind logistic --features 8 --n-train 120 --n-val 40 --n-test 20 \
  --output in.h5 >/dev/null || exit 1
base=(run --data in.h5 --problem logreg --inner-steps 6 --batch 16 --outer-steps 3
  --log-level 1 --checkpoint-every 1 --checkpoint-every-inner 2 --keep 2)
unset NHGD_FAULT NHGD_FAULT_COUNT
run "${base[@]}" --output ref.h5 --checkpoint-dir ck_ref
[ "$rc" -eq 0 ] || { echo "FAIL reference run"; cat log.txt; exit 1; }
run "${base[@]}" --output o.h5 --checkpoint-dir ck0 --halt-after 7
[ "$rc" -eq 75 ] || { echo "FAIL setup: exit $rc"; cat log.txt; exit 1; }

ranks=0
[ "$np" -gt 1 ] && ranks="0 $((np - 1))"
injected=0 clean=0
for r in $ranks; do
  rm -rf ck && cp -r ck0 ck
  rm -f counts.txt
  NHGD_FAULT_COUNT=$PWD/counts.txt run "${base[@]}" --output o.h5 --checkpoint-dir ck
  for kind in h5 alloc; do
    total=$(sed -n "s/^nhgd-faults: rank $r: h5 \([0-9]*\) alloc \([0-9]*\)$/$kind \1 \2/p" counts.txt |
      awk '{print ($1 == "h5") ? $2 : $3}' | head -1)
    [ -n "$total" ] && [ "$total" -gt 0 ] || { echo "FAIL no $kind calls counted on rank $r"; failures=$((failures + 1)); continue; }
    step=$(((total + max - 1) / max))
    first=$((1 + seed % step))
    echo "$kind on rank $r: $total calls, every ${step}th from call $first"
    for n in $(seq "$first" "$step" "$total"); do
      rm -rf ck o.h5.tmp && cp -r ck0 ck
      start=$(date +%s)
      NHGD_FAULT=$kind:$n:$r run "${base[@]}" --output o.h5 --checkpoint-dir ck
      secs=$(($(date +%s) - start))
      injected=$((injected + 1))
      label="$kind call $n of $total on rank $r of $np"
      errors=$(grep -c "nhgd: error" log.txt)
      if [ "$rc" -eq 124 ]; then
        echo "FAIL $label: hang"
        failures=$((failures + 1))
        continue
      elif [ "$rc" -ne 0 ] && { [ "$rc" -ne 1 ] || [ "$errors" -ne 1 ]; }; then
        echo "FAIL $label: exit $rc, $errors error messages"
        grep -v "^\[" log.txt | head -5 | sed 's/^/    /'
        failures=$((failures + 1))
        continue
      fi
      if find ck -name '*.tmp' | grep -q . || [ -e o.h5.tmp ]; then
        echo "FAIL $label: temporary files left behind"
        failures=$((failures + 1))
      fi
      msg=$(grep "nhgd: error" log.txt | cut -c1-120)
      run "${base[@]}" --output o.h5 --checkpoint-dir ck
      if [ "$rc" -ne 0 ]; then
        echo "FAIL $label: the run after it exited $rc"
        tail -3 log.txt | sed 's/^/    /'
        failures=$((failures + 1))
      elif ! $python "$here/tools/compare_h5.py" o.h5 ref.h5 0 /theta /v /u /history/val_loss \
        >cmp.txt 2>&1; then
        echo "FAIL $label: resumed run differs from the reference"
        failures=$((failures + 1))
      else
        clean=$((clean + 1))
        echo "ok   $label: exit ${secs}s ${msg:-(exit 0)}"
      fi
    done
  done
done
echo "faults injected: $injected, clean and resumed bit-identically: $clean, failures: $failures"
[ "$failures" -eq 0 ]
