#!/usr/bin/env bash
# SLURM test: a 3-task jobs/nhgd-array.sbatch sweep over seeds; each task's output equals a direct run of its seed.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

t_make_data "$W/data.h5"
opts=(--data "$W/data.h5" --problem hyperclean --outer-steps 30 --inner-steps 5000)
seeds=(11 12 13)
printf -- '--seed %s\n' "${seeds[@]}" >"$W/params.txt"

for i in 0 1 2; do
  t_direct "$W/direct-$i.h5" "${opts[@]}" --seed "${seeds[$i]}"
done

export NHGD_RUN_DIR=$W/sweep NHGD_ARGS="${opts[*]}"
# One task at a time (%1): the cluster lets jobs share its 2 cores, and 6 busy-polling MPI
# ranks on 2 cores run about ten times slower than 2.
t_submit --job-name=t-array --array=0-2%1 --time=20 --output="$W/job-%A_%a.out" \
  "$SRC/jobs/nhgd-array.sbatch" "$W/params.txt"
array=$T_ID

for i in 0 1 2; do
  # jobcomp knows the tasks only by their own job ids. A task still pending is shown with
  # the array's id; its own id is final once it has started.
  end=$((SECONDS + 600))
  while :; do
    state=$(t_job_field "${array}_$i" JobState)
    id=$(t_job_field "${array}_$i" JobId)
    [ -z "$state" ] || [ "$state" = PENDING ] || break
    [ $SECONDS -lt $end ] || t_fail "array task ${array}_$i has not started after 600 s (state: ${state:-unknown})"
    sleep 1
  done
  T_JOBS+=("$id")
  t_log "array task ${array}_$i is job $id"
  t_wait_final "$id" 600
  [ "$T_STATE $T_EXIT" = "COMPLETED 0:0" ] ||
    t_fail "array task ${array}_$i (job $id) ended $T_STATE with exit code $T_EXIT"
  grep -q -- "--seed ${seeds[$i]}" "$W/job-${array}_$i.out" ||
    t_fail "task $i did not run with --seed ${seeds[$i]} (line $((i + 1)) of params.txt)"
  t_compare "$W/sweep/task-$i/output.h5" "$W/direct-$i.h5"
done
t_log "ok: 3 array tasks, each bit-identical to its direct run"
