#!/usr/bin/env bash
# Stop and resume equals an uninterrupted run bit for bit (every EFIM route, kfac in both
# layouts and with both G factors, `exact`, and --outer-opt lazy-adam, a
# stop inside an inner loop and between outer steps, by --halt-after and by SIGUSR1); resume
# on another rank count agrees to 1e-10; damaged checkpoints are skipped; a changed
# configuration and --restart never over old checkpoints are refused; the run removes only
# the checkpoints it wrote, and one folder serves one run at a time.
# usage: restart.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=restart_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
# shellcheck source=../tools/restart_lib.sh
source "$here/tools/restart_lib.sh"
run() { # ranks args...
  local n=$1
  shift
  timeout 300 $mpirun --oversubscribe --allow-run-as-root -n "$n" "$nhgd" "$@" >>log.txt 2>&1
}
same() { same_tol "$@"; } # tolerance a b label
"$nhgd" data synth --kind logistic --n-train 301 --n-val 83 --n-test 40 --features 6 \
  --classes 3 --seed 2 --output d.h5 >/dev/null || exit 1
base=(run --data d.h5 --problem hyperclean --outer-steps 4 --inner-steps 7 --batch 16
  --inner-lr 0.5 --log-level 1)
other=$((np == 1 ? 2 : 1))
for est in online accumulate gram gram-subsampled kfac kfac-distributed kfac-empirical \
  kfac-subsampled exact; do
  case $est in
  gram-subsampled) cfg=(--estimator nhgd --efim-route gram --efim-samples 5) ;;
  kfac-subsampled) cfg=(--estimator nhgd --efim-route kfac --efim-samples 5) ;;
  exact) cfg=(--estimator exact) ;;
  kfac-distributed) cfg=(--estimator nhgd --efim-route kfac --kfac-layout distributed) ;;
  kfac-empirical) cfg=(--estimator nhgd --efim-route kfac --kfac-g empirical) ;;
  *) cfg=(--estimator nhgd --efim-route "$est") ;;
  esac
  stop_resume "$np" "$other" "$est" "3 7 10" "${cfg[@]}"
done
# The lazy Adam outer step through the program (its option recorded in the checkpoint; the
# moments it leaves alone when the hypergradient is sparse: tests/outer/test_optim.c).
stop_resume "$np" "$other" lazy-adam "7" --estimator nhgd --outer-opt lazy-adam

# SIGUSR1 to the launcher: checkpoint at the next inner step, exit 75, resume bit-identical.
# The signalled run is given far more outer steps than it can finish, so the signal always
# lands first; it is then continued to a few outer steps past the stop (--outer-steps may
# grow on restart) and compared with an uninterrupted run of that length.
cfg=(--estimator nhgd --efim-route online)
long=(run --data d.h5 --problem hyperclean --inner-steps 7 --batch 16 --inner-lr 0.5
  --log-level 2)
rm -rf ck
: >log.txt
$mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${long[@]}" "${cfg[@]}" \
  --outer-steps 100000000 --output s.h5 --checkpoint-dir ck --checkpoint-every 0 >>log.txt 2>&1 &
pid=$!
for _ in $(seq 1 600); do grep -q "outer 2/" log.txt 2>/dev/null && break; sleep 0.05; done
kill -USR1 "$pid"
wait "$pid"
expect_exit 75 $? "SIGUSR1 to mpirun"
pos=$(ls ck | sed -n 's/^ckpt-0*\([0-9][0-9]*\)\.h5$/\1/p' | sort -n | tail -1)
K=$((${pos:-0} / 7 + 3))
run "$np" "${long[@]}" "${cfg[@]}" --outer-steps "$K" --output ref_sig.h5
run "$np" "${long[@]}" "${cfg[@]}" --outer-steps "$K" --output s.h5 --checkpoint-dir ck
expect_exit 0 $? "resume after SIGUSR1"
same 0 s.h5 ref_sig.h5 "stopped by SIGUSR1 at position ${pos:-?}, resumed to $K outer steps: bit-identical"

# Damaged checkpoints are skipped: truncate the newest, flip a byte in the next.
cfg=(--estimator nhgd --efim-route accumulate)
run "$np" "${base[@]}" "${cfg[@]}" --output ref_dmg.h5
rm -rf ck
run "$np" "${base[@]}" "${cfg[@]}" --output c.h5 --checkpoint-dir ck --checkpoint-every-inner 2 \
  --keep 5 --halt-after 17
expect_exit 75 $? "stop before damaging"
newest=$(ls ck/ckpt-*.h5 | sort | tail -1)
second=$(ls ck/ckpt-*.h5 | sort | tail -2 | head -1)
size=$(stat -c %s "$newest")
truncate -s $((size / 2)) "$newest"
printf '\xff' | dd of="$second" bs=1 seek=$((size / 3)) conv=notrunc status=none
: >log.txt
run "$np" "${base[@]}" "${cfg[@]}" --output c.h5 --checkpoint-dir ck --keep 5 --log-level 2
expect_exit 0 $? "resume past damaged checkpoints"
n_skip=$(grep -c "skipping checkpoint" log.txt)
if [ "$n_skip" -ne 2 ] || ! grep -q "truncated" log.txt || ! grep -q "damaged" log.txt; then
  echo "FAIL damaged checkpoints: expected two skips (truncated, damaged), log says:"
  grep -i "skipping\|restarted" log.txt | sed 's/^/    /'
  failures=$((failures + 1))
else
  echo "ok   truncated and flipped-byte checkpoints skipped: $(grep -o 'restarted from [^:]*' log.txt)"
fi
same 0 c.h5 ref_dmg.h5 "finished from the older valid checkpoint: bit-identical"

# Refusals: a changed trajectory option; --restart never over old checkpoints.
: >log.txt
run "$np" "${base[@]}" "${cfg[@]}" --output c.h5 --checkpoint-dir ck --inner-lr 0.25
rc=$?
expect_exit 1 $rc "changed --inner-lr"
grep -q "was written with --inner-lr 0.5 but this run has --inner-lr 0.25" log.txt ||
  { echo "FAIL changed option: message"; failures=$((failures + 1)); }
run "$np" "${base[@]}" "${cfg[@]}" --output c.h5 --checkpoint-dir ck --restart never
expect_exit 1 $? "--restart never over checkpoints"
grep -q "holds .* checkpoint(s) of an earlier run" log.txt ||
  { echo "FAIL restart never: message"; failures=$((failures + 1)); }
# A run that is complete says so and rewrites its output.
: >log.txt
run "$np" "${base[@]}" "${cfg[@]}" --output c2.h5 --checkpoint-dir ck --keep 5 --log-level 2
expect_exit 0 $? "restart of a complete run"
grep -q "already complete" log.txt || { echo "FAIL complete run: message"; failures=$((failures + 1)); }
same 0 c2.h5 ref_dmg.h5 "output of a complete run rewritten: bit-identical"

# Issue 22 (2): the run removes only checkpoints it wrote itself (those named in the folder's
# MANIFEST). The user's ckpt-mine.h5, a checkpoint copied in by hand without its checksum and
# a file named like a leftover of a write stay through the start, every prune (--keep 1) and
# the end; one that has the name of a checkpoint the run is about to write stops the run with
# a message naming it, and is not overwritten either.
rm -rf ck ck2 && mkdir ck ck2
printf 'mine\n' >ck/ckpt-mine.h5
printf 'notes\n' >ck/notes.txt
cp ref_dmg.h5 ck/ckpt-000000000001.h5
cp ref_dmg.h5 ck/ckpt-000000000005.h5.tmp
cp -r ck ck_user
: >log.txt
run "$np" "${base[@]}" "${cfg[@]}" --output u.h5 --checkpoint-dir ck --checkpoint-every-inner 2 \
  --keep 1 --log-level 2
expect_exit 0 $? "a folder with the user's files"
lost=""
for f in ckpt-mine.h5 notes.txt ckpt-000000000001.h5 ckpt-000000000005.h5.tmp; do
  cmp -s "ck/$f" "ck_user/$f" || lost="$lost $f"
done
ours=$(ls ck | grep -c '^ckpt-[0-9]*\.h5\.crc32$')
if [ -n "$lost" ] || [ "$ours" -ne 1 ]; then
  echo "FAIL the user's files in the checkpoint folder: lost or changed:${lost:- none}; $ours checkpoints of the run left (want 1)"
  failures=$((failures + 1))
else
  echo "ok   the user's files in the checkpoint folder are intact; the run pruned its own to --keep 1"
fi
same 0 u.h5 ref_dmg.h5 "a run beside the user's files: bit-identical"
cp ref_dmg.h5 ck2/ckpt-000000000004.h5
: >log.txt
run "$np" "${base[@]}" "${cfg[@]}" --output u.h5 --checkpoint-dir ck2 --checkpoint-every-inner 2
rc=$?
if [ "$rc" -ne 1 ] || [ "$(grep -c "nhgd: error: .*ck2/ckpt-000000000004.h5 exists but no run in this folder wrote it" log.txt)" -ne 1 ] ||
  ! cmp -s ck2/ckpt-000000000004.h5 ref_dmg.h5; then
  echo "FAIL a file with the name of the next checkpoint: exit $rc (want 1), one message, the file intact"
  tail -3 log.txt | sed 's/^/    /'
  failures=$((failures + 1))
else
  echo "ok   a file with the name of the next checkpoint is left alone: $(grep -o 'error: .*' log.txt | cut -c1-100)"
fi

# Issue 22 (11): one folder, one run. A second run on the folder of a running one is refused
# at once with a message naming the holder (host and pid in ck/LOCK), and the first run goes
# on unharmed; once it has ended (the kernel drops the lock with the process), the folder is
# free again. kill9.sh restarts after kill -9, with the lock of the killed run still on file.
rm -rf ck
: >log.txt
$mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${long[@]}" "${cfg[@]}" \
  --outer-steps 100000000 --output l1.h5 --checkpoint-dir ck --checkpoint-every 0 >>log.txt 2>&1 &
pid=$!
for _ in $(seq 1 600); do grep -q "outer 2/" log.txt 2>/dev/null && break; sleep 0.05; done
timeout 120 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${base[@]}" "${cfg[@]}" \
  --output l2.h5 --checkpoint-dir ck --log-level 2 >log2.txt 2>&1
rc=$?
kill -USR1 "$pid"
wait "$pid"
rc1=$?
phrase="checkpoint folder ck is in use by another run (ck/LOCK: held by host $(hostname), pid"
if [ "$rc" -ne 1 ] || [ "$(grep -c -F "$phrase" log2.txt)" -ne 1 ] || grep -q "outer 1/" log2.txt; then
  echo "FAIL a second run on a folder in use: exit $rc (want 1 at start-up, one message '$phrase')"
  tail -3 log2.txt | sed 's/^/    /'
  failures=$((failures + 1))
else
  echo "ok   a second run on a folder in use is refused: $(grep -o 'in use by .*pid [0-9]*' log2.txt)"
fi
expect_exit 75 "$rc1" "the first run, stopped after the second was refused"
run "$np" "${long[@]}" "${cfg[@]}" --outer-steps 1 --output l3.h5 --checkpoint-dir ck
expect_exit 0 $? "the folder is free once its run has ended"

echo "$failures failures"
[ "$failures" -eq 0 ]
