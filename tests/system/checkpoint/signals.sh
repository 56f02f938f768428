#!/usr/bin/env bash
# Signals with --checkpoint-dir: every way of stopping a run that can end in a checkpoint and
# exit 75 does, and the run then resumes bit-identically.
#  - SIGTERM, SIGINT and SIGHUP sent to the ranks are handled like SIGUSR1 (SIGINT and SIGHUP
#    used to kill them, no checkpoint);
#  - a SIGTERM in the first moments of a rank (during MPI_Init, before the options are read)
#    is honoured at the first inner step, not fatal (it used to kill the rank without a word);
#  - Open MPI's mpirun (4.1.4, measured) answers SIGTERM, SIGINT and SIGHUP itself: SIGCONT to
#    the ranks, SIGTERM a second later, SIGKILL a second after that, and exit 1 whatever the
#    ranks return (it refuses to forward the three). The ranks still write their checkpoint
#    and say what happened; started through jobs/nhgd-launch, which passes SIGUSR1 on instead,
#    Ctrl-C (SIGINT to the terminal's process group), SIGTERM and SIGHUP end the run with 75.
# usage: signals.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
launch=$here/../jobs/nhgd-launch
dir=signals_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
# shellcheck source=../tools/restart_lib.sh
source "$here/tools/restart_lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run() { # ranks args...
  local n=$1
  shift
  timeout 300 $mpirun --oversubscribe --allow-run-as-root -n "$n" "$nhgd" "$@" >>log.txt 2>&1
}
"$nhgd" data synth --kind logistic --n-train 301 --n-val 83 --n-test 40 --features 6 \
  --classes 3 --seed 2 --output d.h5 >/dev/null || exit 1
base=(run --data d.h5 --problem hyperclean --inner-steps 7 --batch 16 --inner-lr 0.5
  --log-level 2)
# Far more outer steps than can be done before the signal: the run is always stopped by it.
long=("${base[@]}" --outer-steps 100000000 --checkpoint-every 0 --checkpoint-dir ck --output s.h5)

# The ranks of launcher $1 (its children: with Open MPI each in a process group of its own).
ranks_of() { ps -o pid= --ppid "$1" | tr '\n' ' '; }

# wait_running PID: until the run has logged its third outer step.
wait_running() {
  for _ in $(seq 1 600); do
    grep -q "outer 3/" log.txt 2>/dev/null && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.05
  done
}

# resume_same LABEL: continue the stopped run in ck a few outer steps past its checkpoint and
# compare with an uninterrupted run of that length.
resume_same() {
  local pos K
  pos=$(ls ck | sed -n 's/^ckpt-0*\([0-9][0-9]*\)\.h5$/\1/p' | sort -n | tail -1)
  if [ -z "$pos" ]; then
    echo "FAIL $1: no checkpoint in ck"
    failures=$((failures + 1))
    return
  fi
  K=$((pos / 7 + 2))
  run "$np" "${base[@]}" --outer-steps "$K" --output "ref_$K.h5"
  [ -f "ref_$K.h5" ] || { echo "FAIL $1: reference run"; failures=$((failures + 1)); }
  : >log.txt
  run "$np" "${base[@]}" --outer-steps "$K" --checkpoint-dir ck --output s.h5
  expect_exit 0 $? "$1: resume"
  same_tol 0 s.h5 "ref_$K.h5" "$1: stopped at position $pos, resumed to $K outer steps: bit-identical"
}

# expect_line PHRASE LABEL: PHRASE logged exactly once.
expect_line() {
  local n
  n=$(grep -c -F -- "$1" log.txt)
  if [ "$n" -ne 1 ]; then
    echo "FAIL $2: '$1' logged $n times (want 1)"
    failures=$((failures + 1))
  fi
}

# 1. SIGTERM, SIGINT, SIGHUP to the ranks mid-run: a checkpoint, exit 75, a resume.
for sig in INT HUP TERM; do
  rm -rf ck
  : >log.txt
  $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${long[@]}" >>log.txt 2>&1 &
  pid=$!
  wait_running "$pid"
  # shellcheck disable=SC2046  # one pid per word
  kill -"$sig" $(ranks_of "$pid")
  wait "$pid"
  rc=$?
  expect_exit 75 $rc "SIG$sig to the ranks"
  expect_line "stopped on SIG$sig" "SIG$sig to the ranks"
  [ "$rc" -eq 75 ] && echo "ok   SIG$sig to the ranks: checkpoint, exit 75"
  [ "$sig" = INT ] && resume_same "SIG$sig to the ranks"
done

# 2. SIGTERM to each rank as soon as it has any signal handler (the first are installed
# inside MPI_Init unless the program's come first): the run stops at its first inner step.
rm -rf ck
: >log.txt
$mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${base[@]}" --outer-steps 3 \
  --checkpoint-dir ck --output s.h5 >>log.txt 2>&1 &
pid=$!
declare -A signalled=()
for _ in $(seq 1 20000); do
  for r in $(ranks_of "$pid"); do
    [ -n "${signalled[$r]:-}" ] && continue
    [ "$(readlink "/proc/$r/exe" 2>/dev/null)" = "$(readlink -f "$nhgd")" ] || continue
    caught=$(sed -n 's/^SigCgt:\t//p' "/proc/$r/status" 2>/dev/null)
    [ -n "$caught" ] && [ "$caught" != 0000000000000000 ] || continue
    kill -TERM "$r"
    signalled[$r]=$caught
  done
  [ "${#signalled[@]}" -ge "$np" ] && break
  kill -0 "$pid" 2>/dev/null || break
done
wait "$pid"
rc=$?
expect_exit 75 $rc "SIGTERM at start-up (handlers caught: ${signalled[*]:-none})"
expect_line "stopped on SIGTERM" "SIGTERM at start-up"
[ "$rc" -eq 75 ] && echo "ok   SIGTERM at start-up: not fatal, checkpoint at the first inner step, exit 75"
resume_same "SIGTERM at start-up"

# 3. Through jobs/nhgd-launch: Ctrl-C (SIGINT to the foreground process group, here the
# launcher script's own: job control puts it in one), SIGTERM and SIGHUP to the script.
set -m
for sig in INT TERM HUP; do
  rm -rf ck
  : >log.txt
  "$launch" $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${long[@]}" \
    >>log.txt 2>&1 &
  pid=$!
  wait_running "$pid"
  if [ "$sig" = INT ]; then kill -INT -- -"$pid"; else kill -"$sig" "$pid"; fi
  wait "$pid"
  rc=$?
  expect_exit 75 $rc "SIG$sig to jobs/nhgd-launch"
  expect_line "nhgd-launch: SIG$sig: asking the run to write a checkpoint and stop" \
    "SIG$sig to jobs/nhgd-launch"
  [ "$rc" -eq 75 ] && echo "ok   SIG$sig to jobs/nhgd-launch: checkpoint, exit 75"
  [ "$sig" = INT ] && resume_same "Ctrl-C through jobs/nhgd-launch"
done
set +m

# 4. SIGTERM to mpirun itself: Open MPI ends the job (exit 1 in 4.1.4) and stops reading what
# the ranks print; the ranks still write their checkpoint (they used to block on a full
# output pipe, a line per outer step, until the SIGKILL) and name the two ways to exit 75.
rm -rf ck
: >log.txt
$mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "${long[@]}" >>log.txt 2>&1 &
pid=$!
wait_running "$pid"
sleep 1
kill -TERM "$pid"
wait "$pid"
rc=$?
if ls ck/ckpt-*.h5 >/dev/null 2>&1 && { [ "$rc" -eq 75 ] ||
  grep -q "To stop with exit 75, send SIGUSR1 to mpirun, or start it through jobs/nhgd-launch" \
    log.txt; }; then
  echo "ok   SIGTERM to mpirun: exit $rc, a checkpoint written, and the ways to exit 75 named"
else
  echo "FAIL SIGTERM to mpirun: exit $rc, checkpoint: $(ls ck 2>/dev/null | tr '\n' ' ')"
  tail -3 log.txt | sed 's/^/    /'
  failures=$((failures + 1))
fi

echo "$failures failures"
[ "$failures" -eq 0 ]
