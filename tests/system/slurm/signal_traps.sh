#!/usr/bin/env bash
# SLURM test: SIGINT, SIGHUP and SIGTERM from scancel, to the batch shell (--batch) or the whole batch step (--full), checkpoint a jobs/nhgd.sbatch run; it requeues (or exits 75) and resumes bit-identical.
#
# One job takes four signals in turn (--batch INT, --full HUP, --batch HUP, --full INT); each
# start must stop with a checkpoint inside an inner loop and the next start must resume from
# it. With --full, mpirun gets the signal as well, ends the ranks itself and exits 1 after
# they wrote their checkpoint; the script takes that checkpoint as exit 75. A second job with
# NHGD_REQUEUE=0 takes --full TERM (what SLURM sends when it ends a job) and must end FAILED
# with exit code 75, not requeued; submitted again, it resumes. Both end as the direct run.
# With NHGD_LAUNCH=srun (test slurm_signal_traps_srun) the jobs launch with srun instead.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

t_make_data "$W/data.h5"
opts=(--data "$W/data.h5" --problem hyperclean --outer-steps 40 --inner-steps 5000)
t_direct "$W/direct.h5" "${opts[@]}"

# A start of a job logged the signal and how the launcher ended, and the next start resumed
# from a checkpoint taken inside an inner loop (the stop's, not one of an outer-step boundary)
# past outer step 1. STOP and NEXT are the two starts' lines of the job log.
check_stop() { # check_stop WHAT STOP NEXT HOW SIGNAL
  local what=$1 stop=$2 next=$3 how=$4 sig=$5 at first
  grep -q "received SIG$sig: asking the program" <<<"$stop" ||
    t_fail "$what: no line saying the script received SIG$sig (scancel $how)"
  if grep -q "the program exited 75: checkpoint written after SIG$sig" <<<"$stop"; then
    t_log "$what: SIG$sig ($how): the program exited 75"
  elif [ "$how" = --full ] && grep -q "after SIG$sig, and checkpoint ckpt-[0-9r-]*\.h5 was \
written after the signal: taken as exit 75" <<<"$stop"; then
    t_log "$what: SIG$sig ($how): mpirun ended the ranks; their checkpoint taken as exit 75"
  else
    t_fail "$what: no exit 75 after SIG$sig (scancel $how)"
  fi
  at=$(sed -nE 's/.*restarted from [^ ]*: outer step [0-9]+, inner step ([0-9]+).*/\1/p' <<<"$next")
  first=$(t_first_outer <<<"$next")
  [ -n "$at" ] || t_fail "$what: the next start did not restart from a checkpoint"
  [ "$at" -gt 0 ] || t_fail "$what: the next start resumed at an outer-step boundary, not from the stop's checkpoint"
  if [ -z "$first" ] || [ "$first" -le 1 ]; then
    t_fail "$what: the next start's first progress line is outer step ${first:-none}, not past 1"
  fi
  t_log "$what: the next start resumed at inner step $at, first outer step done $first"
}

export NHGD_RUN_DIR=$W/run NHGD_ARGS="${opts[*]}"
t_submit --job-name=t-traps --time=20 --output="$W/job-%j.out" "$SRC/jobs/nhgd.sbatch"
id=$T_ID
log=$W/job-$id.out
signals=("--batch INT" "--full HUP" "--batch HUP" "--full INT")
for r in "${!signals[@]}"; do
  read -r how sig <<<"${signals[$r]}"
  # Two progress lines in this start: the program runs, past the step it resumed in.
  t_wait_start_progress "$log" "$r" 2 "$id" 300
  scancel "$how" --signal="$sig" "$id" || t_fail "scancel $how --signal=$sig $id failed"
  t_log "start $r: sent SIG$sig with scancel $how"
done
t_wait_final "$id" 600
[ "$T_STATE $T_EXIT" = "COMPLETED 0:0" ] ||
  t_fail "job $id ended $T_STATE with exit code $T_EXIT, expected COMPLETED 0:0"
n=${#signals[@]}
[ "$(t_requeues "$id")" -eq "$n" ] || t_fail "jobcomp shows $(t_requeues "$id") requeues of job $id, expected $n"
restarts=$(t_job_field "$id" Restarts)
[ "${restarts:-0}" -eq "$n" ] || t_fail "scontrol show job $id: Restarts=${restarts:-?}, expected $n"
for r in "${!signals[@]}"; do
  read -r how sig <<<"${signals[$r]}"
  check_stop "job $id, start $r" "$(t_segment "$log" "$r")" "$(t_segment "$log" $((r + 1)))" \
    "$how" "$sig"
done
t_compare "$W/run/output.h5" "$W/direct.h5"
t_log "ok: $n signals, $n requeues, each resumed from the stop's checkpoint, output bit-identical"

# NHGD_REQUEUE=0: the job ends with the program's 75 and stays ended; a new job resumes.
export NHGD_RUN_DIR=$W/run2 NHGD_REQUEUE=0
t_submit --job-name=t-traps-75 --time=20 --output="$W/job-%j.out" "$SRC/jobs/nhgd.sbatch"
id=$T_ID
log=$W/job-$id.out
t_wait_start_progress "$log" 0 2 "$id" 300
scancel --full --signal=TERM "$id" || t_fail "scancel --full --signal=TERM $id failed"
t_log "sent SIGTERM with scancel --full"
t_wait_final "$id" 300
[ "$T_STATE $T_EXIT" = "FAILED 75:0" ] ||
  t_fail "job $id ended $T_STATE with exit code $T_EXIT, expected FAILED 75:0 (NHGD_REQUEUE=0)"
[ "$(t_requeues "$id")" -eq 0 ] || t_fail "job $id was requeued with NHGD_REQUEUE=0"
grep -q "NHGD_REQUEUE=0: not requeueing" "$log" || t_fail "$log does not say why it did not requeue"
t_submit --job-name=t-traps-resume --time=20 --output="$W/job-%j.out" "$SRC/jobs/nhgd.sbatch"
id2=$T_ID
t_wait_final "$id2" 300
[ "$T_STATE $T_EXIT" = "COMPLETED 0:0" ] ||
  t_fail "job $id2 ended $T_STATE with exit code $T_EXIT, expected COMPLETED 0:0"
check_stop "job $id then $id2" "$(cat "$log")" "$(cat "$W/job-$id2.out")" --full TERM
t_compare "$W/run2/output.h5" "$W/direct.h5"
t_log "ok: SIGTERM to the whole step with NHGD_REQUEUE=0: exit 75, not requeued, resumed bit-identical"
