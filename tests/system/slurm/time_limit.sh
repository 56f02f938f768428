#!/usr/bin/env bash
# SLURM test (slow): a run longer than --time=2 is signalled by SLURM before its limit, requeues itself and finishes bit-identical.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

t_make_data "$W/data.h5"
# About 2.5 minutes of work at 2 ranks: more than one 2-minute allocation.
opts=(--data "$W/data.h5" --problem hyperclean --outer-steps 650 --inner-steps 5000)
t_direct "$W/direct.h5" "${opts[@]}"

export NHGD_RUN_DIR=$W/run NHGD_ARGS="${opts[*]}"
# SLURM checks limits every 30 s and may signal up to 60 s early: @60 leaves the program
# time to checkpoint before the limit.
t_submit --job-name=t-timelimit --time=2 --signal=B:USR1@60 --output="$W/job-%j.out" \
  "$SRC/jobs/nhgd.sbatch"
id=$T_ID
log=$W/job-$id.out
t_wait_final "$id" 1200
[ "$T_STATE $T_EXIT" = "COMPLETED 0:0" ] ||
  t_fail "job $id ended $T_STATE with exit code $T_EXIT, expected COMPLETED 0:0"
grep -q "received SIGUSR1" "$log" || t_fail "$log: the batch script never got SIGUSR1 from SLURM"
n=$(t_requeues "$id")
[ "$n" -ge 1 ] || t_fail "jobcomp shows no requeue of job $id"
t_check_resumed "$log" 1
t_compare "$W/run/output.h5" "$W/direct.h5"
t_log "ok: requeued itself $n time(s) at the time limit, output bit-identical"
