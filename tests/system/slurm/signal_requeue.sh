#!/usr/bin/env bash
# SLURM test: USR1 to a running jobs/nhgd.sbatch job checkpoints, requeues, resumes and ends bit-identical to a direct run.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

t_make_data "$W/data.h5"
opts=(--data "$W/data.h5" --problem hyperclean --outer-steps 100 --inner-steps 5000)
t_direct "$W/direct.h5" "${opts[@]}"

export NHGD_RUN_DIR=$W/run NHGD_ARGS="${opts[*]}"
t_submit --job-name=t-signal --time=20 --output="$W/job-%j.out" "$SRC/jobs/nhgd.sbatch"
id=$T_ID
log=$W/job-$id.out
t_wait_state "$id" RUNNING 180
t_wait_checkpoint "$W/run" "$id" 180
t_wait_progress "$log" 2 "$id" 180
scancel --batch --signal=USR1 "$id" || t_fail "scancel --batch --signal=USR1 $id failed"
t_log "sent SIGUSR1 to the batch script of job $id"

t_wait_final "$id" 600
[ "$T_STATE $T_EXIT" = "COMPLETED 0:0" ] ||
  t_fail "job $id ended $T_STATE with exit code $T_EXIT, expected COMPLETED 0:0"
grep -q "the program exited 75" "$log" || t_fail "$log: the program never exited 75 after the signal"
[ "$(t_requeues "$id")" -ge 1 ] || t_fail "jobcomp shows no requeue of job $id"
restarts=$(t_job_field "$id" Restarts)
[ "${restarts:-0}" -ge 1 ] || t_fail "scontrol show job $id: Restarts=${restarts:-?}, expected >= 1"
t_check_resumed "$log" 1
t_compare "$W/run/output.h5" "$W/direct.h5"
t_log "ok: requeued $restarts time(s), resumed, output bit-identical"
