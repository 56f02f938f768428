# Launch, signal forwarding and self-requeue shared by the nhgd batch scripts (sourced, not run).
# shellcheck shell=bash
#
# The scripts that source this call nhgd_job_main RUN_DIR [nhgd options...]. It starts
#   LAUNCHER nhgd run --checkpoint-dir RUN_DIR/checkpoints --restart auto
#                     --output RUN_DIR/output.h5 --metrics RUN_DIR/metrics.jsonl OPTIONS...
# in the background and waits for it. SIGUSR1, SIGTERM, SIGINT or SIGHUP to this shell (sbatch
# --signal=B:USR1@T, scancel --batch --signal=USR1, the time limit) is passed on as SIGUSR1 to
# the launcher, which passes it to every rank: the program writes a checkpoint and exits 75.
# Exit 75 ("checkpointed, resubmit me") makes the job requeue itself; SLURM then starts this
# script again and the program resumes from the newest checkpoint. The function returns the
# program's exit code (0 when the run is complete).
#
# Knobs (environment): NHGD_BIN, NHGD_LAUNCH (mpirun|srun), NHGD_MPIRUN_ARGS, NHGD_SRUN_ARGS,
# NHGD_NTASKS (ranks when not under SLURM), NHGD_REQUEUE (0: never requeue). No `set -e`
# here: a trapped signal interrupts `wait` with a non-zero status that is not an error.

# One timestamped line on the job's output.
nhgd_log() {
  printf '[nhgd-job %s] %s\n' "$(date '+%F %T')" "$*"
}

# The directory of the batch scripts: the one this file was sourced from.
nhgd_jobs_dir() {
  dirname -- "${BASH_SOURCE[0]}"
}

# The program: NHGD_BIN, else nhgd on PATH, else the repository's build/nhgd.
nhgd_find_bin() {
  local jobs_dir=$1
  if [ -n "${NHGD_BIN:-}" ]; then
    echo "$NHGD_BIN"
  elif command -v nhgd >/dev/null 2>&1; then
    command -v nhgd
  else
    echo "$(cd "$jobs_dir/.." && pwd)/build/nhgd"
  fi
}

# The launcher command for NHGD_LAUNCH, into the array nhgd_launcher.
nhgd_make_launcher() {
  local n=${SLURM_NTASKS:-${NHGD_NTASKS:-2}} extra=() cpus over=0
  # More ranks than CPUs (--ntasks=4 --overcommit on 2 cores): Open MPI counts the
  # allocation's 4 slots, does not see the oversubscription, and its ranks busy-poll each
  # other off the cores (100x slower, measured). Make them yield when idle.
  cpus=$(nproc 2>/dev/null || echo 1)
  if [ -n "${SLURM_CPUS_ON_NODE:-}" ] && [ "$SLURM_CPUS_ON_NODE" -lt "$cpus" ]; then
    cpus=$SLURM_CPUS_ON_NODE
  fi
  if [ "$n" -gt "$cpus" ]; then
    over=1
    export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
    nhgd_log "$n ranks on $cpus CPUs: OMPI_MCA_mpi_yield_when_idle=$OMPI_MCA_mpi_yield_when_idle"
  fi
  case "${NHGD_LAUNCH:-mpirun}" in
  mpirun)
    # Open MPI takes the slots from the allocation; root needs its explicit consent.
    read -r -a extra <<<"${NHGD_MPIRUN_ARGS:-}"
    nhgd_launcher=(mpirun -n "$n")
    [ "$(id -u)" -ne 0 ] || nhgd_launcher+=(--allow-run-as-root)
    [ -n "${SLURM_JOB_ID:-}" ] || nhgd_launcher+=(--oversubscribe)
    [ $over -eq 0 ] || nhgd_launcher+=(--bind-to none)
    nhgd_launcher+=("${extra[@]}")
    ;;
  srun)
    # Debian's Open MPI works with PMIx only (pmi2 and none fail).
    read -r -a extra <<<"${NHGD_SRUN_ARGS:-}"
    nhgd_launcher=(srun --mpi=pmix -n "$n" "${extra[@]}")
    # srun answers SIGTERM and SIGHUP by killing its tasks at once (SIGKILL: no checkpoint,
    # and the job fails with 137). In a session of its own it is out of the batch step's
    # process group, which scancel --full signals; this script's trap passes SIGUSR1 on,
    # which srun forwards to the ranks, and a job's end still reaches them through the step.
    ! command -v setsid >/dev/null || nhgd_launcher=(setsid "${nhgd_launcher[@]}")
    ;;
  *)
    nhgd_log "error: NHGD_LAUNCH must be mpirun or srun, not '${NHGD_LAUNCH}'"
    return 2
    ;;
  esac
}

# Signal handler: remember the signal (and when the first came) and pass SIGUSR1 on to the
# launcher (if it runs yet).
nhgd_on_signal() {
  nhgd_signalled=$1
  nhgd_interrupted=1
  [ -n "$nhgd_signal_time" ] || nhgd_signal_time=$(date +%s.%N)
  if [ -n "${nhgd_pid:-}" ]; then
    nhgd_log "received SIG$1: asking the program (launcher pid $nhgd_pid) to checkpoint and stop"
    kill -USR1 "$nhgd_pid" 2>/dev/null
  else
    nhgd_log "received SIG$1 before the program started: it will be passed on at launch"
  fi
}

# The newest checkpoint of DIR published (its .crc32 renamed into place, the commit) after
# the epoch time SINCE; empty when there is none.
nhgd_checkpoint_since() { # nhgd_checkpoint_since DIR SINCE
  find "$1" -maxdepth 1 -name 'ckpt-*.h5.crc32' -newermt "@$2" -printf '%T@ %f\n' 2>/dev/null |
    sort -n | tail -n 1 | sed 's/^[^ ]* //; s/\.crc32$//'
}

# Put this job back in the queue after a checkpoint, unless requeueing is off, the job was
# submitted with --no-requeue, or it is being cancelled (a requeue would undo the cancel).
nhgd_requeue() {
  local info state flag
  if [ -z "${SLURM_JOB_ID:-}" ]; then
    nhgd_log "checkpointed (exit 75); not under SLURM: run the same command again to resume"
    return
  fi
  if [ "${NHGD_REQUEUE:-1}" = 0 ]; then
    nhgd_log "checkpointed (exit 75); NHGD_REQUEUE=0: not requeueing (resubmit to resume)"
    return
  fi
  info=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null)
  state=$(sed -n 's/^ *JobState=\([A-Z_]*\).*/\1/p' <<<"$info" | head -n 1)
  flag=$(sed -n 's/^ *Requeue=\([0-9]*\).*/\1/p' <<<"$info" | head -n 1)
  if [ "$flag" = 0 ]; then
    nhgd_log "checkpointed (exit 75); the job was submitted with --no-requeue: resubmit to resume"
    return
  fi
  if [ "$state" = CANCELLED ]; then
    nhgd_log "checkpointed (exit 75); the job is being cancelled: not requeueing"
    return
  fi
  # The launcher has exited; nothing else of ours may outlive the requeue, which ends this
  # script. SIGKILL, so that reaping them cannot block.
  local p
  for p in $(jobs -p); do
    kill -KILL "$p" 2>/dev/null
  done
  wait 2>/dev/null
  nhgd_log "checkpointed (exit 75): requeueing job $SLURM_JOB_ID (restart $((${SLURM_RESTART_COUNT:-0} + 1)))"
  if ! scontrol requeue "$SLURM_JOB_ID"; then
    nhgd_log "error: scontrol requeue $SLURM_JOB_ID failed: resubmit to resume from the checkpoint"
    return
  fi
  # The requeue ends this script; give SLURM the moment it needs.
  sleep 30
}

# nhgd_job_main RUN_DIR [nhgd options...]: run (or resume) the solver in RUN_DIR.
nhgd_job_main() {
  local run_dir=$1 jobs_dir bin rc
  shift
  jobs_dir=$(nhgd_jobs_dir)
  bin=$(nhgd_find_bin "$jobs_dir")
  nhgd_make_launcher || return 2
  export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
  nhgd_log "job ${SLURM_JOB_ID:-none}${SLURM_ARRAY_TASK_ID:+ (array ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID})} on $(hostname)" \
    "SLURM_RESTART_COUNT=${SLURM_RESTART_COUNT:-0} run dir $run_dir"
  if [ ! -x "$bin" ]; then
    nhgd_log "error: the program $bin is not executable (set NHGD_BIN)"
    return 2
  fi
  if ! mkdir -p "$run_dir/checkpoints"; then
    nhgd_log "error: cannot create $run_dir/checkpoints"
    return 1
  fi
  local cmd=("${nhgd_launcher[@]}" "$bin" run --checkpoint-dir "$run_dir/checkpoints" --restart auto
    --output "$run_dir/output.h5" --metrics "$run_dir/metrics.jsonl" "$@")
  nhgd_log "command: ${cmd[*]}"

  nhgd_pid="" nhgd_signalled="" nhgd_signal_time="" nhgd_interrupted=0
  trap 'nhgd_on_signal USR1' USR1
  trap 'nhgd_on_signal TERM' TERM
  trap 'nhgd_on_signal INT' INT
  trap 'nhgd_on_signal HUP' HUP
  "${cmd[@]}" &
  nhgd_pid=$!
  if [ -n "$nhgd_signalled" ]; then
    kill -USR1 "$nhgd_pid" 2>/dev/null
  fi
  # A trapped signal makes `wait` return early (status > 128) while the program still
  # runs: wait again until it has really exited; bash keeps its status.
  while :; do
    nhgd_interrupted=0
    wait "$nhgd_pid"
    rc=$?
    [ "$nhgd_interrupted" = 1 ] || break
  done
  nhgd_pid=""
  # From here SIGTERM (SLURM ending the job, or the requeue) may end this script at once;
  # a late SIGUSR1 must not kill it before it has requeued the job.
  trap '' USR1
  trap - TERM INT HUP
  # A signal sent to the whole job (scancel --full, or SLURM ending it) reaches mpirun too,
  # which answers SIGINT, SIGTERM and SIGHUP by ending the ranks itself and exits 1, even when
  # they have written their checkpoint (docs/checkpoints.md). A checkpoint published after
  # the signal is the stop asked for.
  local ck=""
  if [ -n "$nhgd_signalled" ] && [ "$rc" -ne 0 ] && [ "$rc" -ne 75 ]; then
    ck=$(nhgd_checkpoint_since "$run_dir/checkpoints" "$nhgd_signal_time")
    if [ -n "$ck" ]; then
      nhgd_log "the launcher exited $rc after SIG$nhgd_signalled, and checkpoint $ck was written" \
        "after the signal: taken as exit 75"
      rc=75
    fi
  fi
  case $rc in
  0) nhgd_log "the program exited 0: run complete (output $run_dir/output.h5)" ;;
  75)
    [ -n "$ck" ] ||
      nhgd_log "the program exited 75: checkpoint written${nhgd_signalled:+ after SIG$nhgd_signalled}"
    nhgd_requeue
    ;;
  *) nhgd_log "error: the program exited $rc${nhgd_signalled:+ after SIG$nhgd_signalled}" ;;
  esac
  trap - USR1
  return "$rc"
}
