# Helpers shared by the SLURM tests (sourced): cluster access, input data, direct runs, bounded job waits.
# shellcheck shell=bash
#
# A test is run as: bash tests/system/slurm/NAME.sh NHGD SOURCE_DIR CLUSTER_DIR
# from the CTest work directory; it works in ./slurm-NAME (emptied first), cancels every job
# it submitted when it exits, and prints "FAIL (NAME): why" plus the state of its jobs, the
# tails of their logs and of slurmctld's log on failure.
set -uo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 NHGD SOURCE_DIR CLUSTER_DIR" >&2
  exit 2
fi
NHGD=$(realpath -- "$1")
SRC=$(realpath -- "$2")
CLUSTER=$(realpath -m -- "$3")
T_NAME=$(basename "$0" .sh)${NHGD_LAUNCH:+-$NHGD_LAUNCH}
W=$PWD/slurm-$T_NAME
JOBCOMP=$CLUSTER/log/jobcomp.txt
export SLURM_CONF=$CLUSTER/slurm.conf
export OPENBLAS_NUM_THREADS=1
# The jobs run the program under test, whatever nhgd may be on PATH.
export NHGD_BIN=$NHGD
T_JOBS=()
T_MPIRUN=(mpirun -n 2 --oversubscribe)
[ "$(id -u)" -ne 0 ] || T_MPIRUN+=(--allow-run-as-root)

t_log() {
  echo "[$T_NAME $(date +%T)] $*"
}

# Everything that helps to see why a test failed.
t_diagnose() {
  local id f
  echo "---- squeue"
  squeue -r 2>&1
  for id in "${T_JOBS[@]}"; do
    echo "---- scontrol show job $id"
    scontrol show job "$id" 2>&1 | head -n 12
    echo "---- jobcomp lines of job $id"
    grep -E "^JobId=$id " "$JOBCOMP" 2>/dev/null
  done
  for f in "$W"/*.out; do
    [ -f "$f" ] || continue
    echo "---- last lines of $f"
    tail -n 30 "$f"
  done
  echo "---- last lines of $CLUSTER/log/slurmctld.log"
  tail -n 15 "$CLUSTER/log/slurmctld.log" 2>&1
}

t_fail() {
  echo "FAIL ($T_NAME): $*"
  t_diagnose
  exit 1
}

t_cleanup() {
  local id
  for id in "${T_JOBS[@]}"; do
    scancel "$id" 2>/dev/null
  done
}
trap t_cleanup EXIT

bash "$SRC/scripts/slurm-local.sh" status "$CLUSTER" >/dev/null ||
  t_fail "no SLURM cluster runs in $CLUSTER (the slurm_cluster_start fixture starts it)"
[ -x "$NHGD" ] || t_fail "the program $NHGD is missing"
case "$W" in
*[[:space:]]*) t_fail "the work directory '$W' contains blanks (NHGD_ARGS is split on blanks)" ;;
esac
rm -rf "$W"
mkdir -p "$W" || t_fail "cannot create $W"

# The small synthetic input of every SLURM test.
t_make_data() { # t_make_data FILE
  "$NHGD" data synth --kind logistic --n-train 400 --n-val 100 --n-test 100 --features 8 \
    --classes 3 --output "$1" >"$W/data.log" 2>&1 || {
    cat "$W/data.log"
    t_fail "nhgd data synth failed"
  }
}

# The reference: the same options run directly with mpirun at 2 ranks, no checkpoints.
t_direct() { # t_direct OUTPUT nhgd-options...
  local out=$1 t0=$SECONDS
  shift
  "${T_MPIRUN[@]}" "$NHGD" run "$@" --output "$out" >"$W/direct-$(basename "$out" .h5).log" 2>&1 ||
    t_fail "the direct run failed (exit $?); log: $W/direct-$(basename "$out" .h5).log"
  t_log "direct run $(basename "$out") took $((SECONDS - t0)) s"
}

# Submit with sbatch; the job id goes to T_ID and is cancelled when the test exits.
t_submit() { # t_submit sbatch-arguments...
  local out
  out=$(sbatch --parsable "$@" 2>&1) || t_fail "sbatch $* failed: $out"
  T_ID=${out%%;*}
  [[ "$T_ID" =~ ^[0-9]+$ ]] || t_fail "sbatch printed '$out', not a job id"
  T_JOBS+=("$T_ID")
  t_log "submitted job $T_ID"
}

# One field of `scontrol show job` (empty when slurmctld has forgotten the job).
t_job_field() { # t_job_field JOBID FIELD
  scontrol show job "$1" 2>/dev/null | tr -s ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# Wait until the job is in STATE; fail after TIMEOUT seconds or if it ends first.
t_wait_state() { # t_wait_state JOBID STATE TIMEOUT
  local id=$1 want=$2 end=$((SECONDS + $3)) state
  while :; do
    state=$(t_job_field "$id" JobState)
    [ "$state" = "$want" ] && return 0
    case "$state" in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
      t_fail "job $id ended ($state) while waiting for $want"
      ;;
    esac
    [ $SECONDS -lt $end ] || t_fail "job $id not $want after $3 s (state: ${state:-unknown})"
    sleep 1
  done
}

# The final jobcomp line of a job: one that is not the PENDING line a requeue leaves.
t_final_line() { # t_final_line JOBID
  grep -E "^JobId=$1 " "$JOBCOMP" 2>/dev/null | grep -vE 'JobState=(PENDING|REQUEUE)' | tail -n 1
}

# Wait until the job has ended for good; T_STATE and T_EXIT (e.g. COMPLETED, 0:0) say how.
t_wait_final() { # t_wait_final JOBID TIMEOUT
  local id=$1 end=$((SECONDS + $2)) line
  while :; do
    line=$(t_final_line "$id")
    if [ -n "$line" ]; then
      T_STATE=$(tr ' ' '\n' <<<"$line" | sed -n 's/^JobState=//p')
      T_EXIT=$(tr ' ' '\n' <<<"$line" | sed -n 's/^ExitCode=//p')
      t_log "job $id ended: $T_STATE, exit code $T_EXIT"
      return 0
    fi
    [ $SECONDS -lt $end ] ||
      t_fail "job $id has not ended after $2 s (state: $(t_job_field "$id" JobState), restarts: $(t_job_field "$id" Restarts))"
    sleep 2
  done
}

# Times a job was requeued, from the PENDING lines jobcomp writes at each requeue.
t_requeues() { # t_requeues JOBID
  grep -E "^JobId=$1 " "$JOBCOMP" 2>/dev/null | grep -cE 'JobState=(PENDING|REQUEUE)'
}

# Wait until a checkpoint has been written in RUN_DIR/checkpoints (a file that is not a
# temporary one) while job JOBID runs.
t_wait_checkpoint() { # t_wait_checkpoint RUN_DIR JOBID TIMEOUT
  local dir=$1/checkpoints id=$2 end=$((SECONDS + $3))
  while :; do
    if [ -n "$(find "$dir" -type f ! -iname '*tmp*' 2>/dev/null | head -n 1)" ]; then
      t_log "first checkpoint in $dir: $(find "$dir" -type f ! -iname '*tmp*' | head -n 1 | xargs basename)"
      return 0
    fi
    [ -z "$(t_final_line "$id")" ] || t_fail "job $id ended before writing a checkpoint in $dir"
    [ $SECONDS -lt $end ] || t_fail "no checkpoint in $dir after $3 s"
    sleep 0.5
  done
}

# Wait until the job log shows outer step K done (a progress line 'outer K/N'): a signal
# after that stops the run past step 1, so a resumed start is told from one that started over.
t_wait_progress() { # t_wait_progress LOG K JOBID TIMEOUT
  local log=$1 k=$2 id=$3 end=$((SECONDS + $4))
  while :; do
    grep -qE " outer $k/" "$log" 2>/dev/null && return 0
    [ -z "$(t_final_line "$id")" ] || t_fail "job $id ended before outer step $k (see $log)"
    [ $SECONDS -lt $end ] || t_fail "job $id: no progress line 'outer $k/N' in $log after $4 s"
    sleep 0.5
  done
}

# The lines of one start of a job: those from the start that logged SLURM_RESTART_COUNT=R
# to the next start (--open-mode=append keeps every start in one log).
t_segment() { # t_segment LOG R
  awk -v m="SLURM_RESTART_COUNT=$2 " 'index($0, "SLURM_RESTART_COUNT=") { on = index($0, m) > 0 }
    on' "$1" 2>/dev/null
}

# Wait until start R of the job has logged N progress lines ('outer K/N'): its program runs,
# past the step it resumed in.
t_wait_start_progress() { # t_wait_start_progress LOG R N JOBID TIMEOUT
  local log=$1 r=$2 want=$3 id=$4 end=$((SECONDS + $5)) n
  while :; do
    n=$(t_segment "$log" "$r" | grep -cE ' outer [0-9]+/')
    [ "$n" -ge "$want" ] && return 0
    [ -z "$(t_final_line "$id")" ] || t_fail "job $id ended before start $r logged $want progress lines (see $log)"
    [ $SECONDS -lt $end ] || t_fail "job $id: start $r logged $n of $want progress lines in $5 s (see $log)"
    sleep 0.5
  done
}

# The outer step of the first progress line ('outer K/N') of the log lines on standard input.
t_first_outer() {
  sed -nE 's/.* outer ([0-9]+)\/.*/\1/p' | head -n 1
}

# The job log shows a start after a requeue that resumed (its first progress line is past
# outer step 1) rather than starting over.
t_check_resumed() { # t_check_resumed LOG RESTART_COUNT
  local log=$1 n=$2 first
  grep -q "SLURM_RESTART_COUNT=$n " "$log" || t_fail "$log has no start with SLURM_RESTART_COUNT=$n"
  first=$(t_segment "$log" "$n" | t_first_outer)
  [ -n "$first" ] || t_fail "$log: no progress line ('outer K/N') after restart $n"
  [ "$first" -gt 1 ] || t_fail "$log: restart $n started over at outer step $first instead of resuming"
  t_log "restart $n resumed at outer step $first"
}

# Outputs identical to the bit: /theta, /v and the validation-loss history.
t_compare() { # t_compare A B
  [ -f "$1" ] || t_fail "output $1 missing"
  /usr/bin/python3 "$SRC/tests/tools/compare_h5.py" "$1" "$2" 0 /theta /v /history/val_loss ||
    t_fail "$1 differs from $2"
}
