#!/usr/bin/env bash
# SLURM test: a 3-task jobs/nhgd-array.sbatch sweep over seeds; each task's output equals a direct run of its seed.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

t_make_data "$W/data.h5"
opts=(--data "$W/data.h5" --problem hyperclean --outer-steps 30 --inner-steps 5000)
seeds=(11 12 13)
printf -- '--seed %s\n' "${seeds[@]}" >"$W/params.txt"

export NHGD_RUN_DIR=$W/sweep NHGD_ARGS="${opts[*]}"
t_submit --job-name=t-array --array=0-2 --time=20 --output="$W/job-%A_%a.out" \
  "$SRC/jobs/nhgd-array.sbatch" "$W/params.txt"
array=$T_ID
# The direct runs meanwhile: the cluster shares the two cores with them.
for i in 0 1 2; do
  t_direct "$W/direct-$i.h5" "${opts[@]}" --seed "${seeds[$i]}"
done

for i in 0 1 2; do
  # Each task has a job id of its own; jobcomp knows the tasks only by those.
  end=$((SECONDS + 120))
  while id=$(t_job_field "${array}_$i" JobId) && [ -z "$id" ]; do
    [ $SECONDS -lt $end ] || t_fail "scontrol does not know array task ${array}_$i"
    sleep 1
  done
  T_JOBS+=("$id")
  t_wait_final "$id" 600
  [ "$T_STATE $T_EXIT" = "COMPLETED 0:0" ] ||
    t_fail "array task ${array}_$i (job $id) ended $T_STATE with exit code $T_EXIT"
  grep -q -- "--seed ${seeds[$i]}" "$W/job-${array}_$i.out" ||
    t_fail "task $i did not run with --seed ${seeds[$i]} (line $((i + 1)) of params.txt)"
  t_compare "$W/sweep/task-$i/output.h5" "$W/direct-$i.h5"
done
t_log "ok: 3 array tasks, each bit-identical to its direct run"
