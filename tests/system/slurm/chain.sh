#!/usr/bin/env bash
# SLURM test: jobs/nhgd-chain.sh with 3 links: the first stops at a checkpoint, the second resumes and completes, the third finds it complete.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

t_make_data "$W/data.h5"
opts=(--data "$W/data.h5" --problem hyperclean --outer-steps 100 --inner-steps 5000)
t_direct "$W/direct.h5" "${opts[@]}"

export NHGD_RUN_DIR=$W/run NHGD_ARGS="${opts[*]}"
out=$(bash "$SRC/jobs/nhgd-chain.sh" 3 --time=20 --output="$W/job-%j.out") ||
  t_fail "nhgd-chain.sh failed: $out"
mapfile -t ids <<<"$out"
T_JOBS+=("${ids[@]}")
[ ${#ids[@]} -eq 3 ] || t_fail "nhgd-chain.sh printed ${#ids[@]} lines, expected 3 job ids: $out"
t_log "chain: ${ids[*]}"

# The first link plays the one that reaches the queue's time limit: its batch script gets
# SIGUSR1 as --signal=B:USR1 would send it, and the link ends after its checkpoint.
t_wait_state "${ids[0]}" RUNNING 180
t_wait_checkpoint "$W/run" "${ids[0]}" 180
t_wait_progress "$W/job-${ids[0]}.out" 2 "${ids[0]}" 180
scancel --batch --signal=USR1 "${ids[0]}" || t_fail "scancel --batch --signal=USR1 ${ids[0]} failed"
t_log "sent SIGUSR1 to link 1 (job ${ids[0]})"

for i in 0 1 2; do
  t_wait_final "${ids[$i]}" 600
  states[i]=$T_STATE codes[i]=$T_EXIT
done
[ "${codes[0]}" = 75:0 ] || t_fail "link 1 ended ${states[0]} with exit code ${codes[0]}, expected 75 (checkpointed)"
[ "$(t_requeues "${ids[0]}")" -eq 0 ] || t_fail "link 1 requeued itself; chain links must not"
for i in 1 2; do
  [ "${states[$i]} ${codes[$i]}" = "COMPLETED 0:0" ] ||
    t_fail "link $((i + 1)) ended ${states[$i]} with exit code ${codes[$i]}, expected COMPLETED 0:0"
done
# In order: each link started after the previous one had ended.
for i in 1 2; do
  prev_end=$(t_final_line "${ids[$((i - 1))]}" | tr ' ' '\n' | sed -n 's/^EndTime=//p')
  start=$(t_final_line "${ids[$i]}" | tr ' ' '\n' | sed -n 's/^StartTime=//p')
  [ "$(date -d "$start" +%s)" -ge "$(date -d "$prev_end" +%s)" ] ||
    t_fail "link $((i + 1)) started at $start, before link $i ended at $prev_end"
done
log2=$W/job-${ids[1]}.out log3=$W/job-${ids[2]}.out
awk 'match($0, / outer [0-9]+\//) { print substr($0, RSTART + 7, RLENGTH - 8); exit }' "$log2" |
  { read -r k && [ "$k" -gt 1 ]; } || t_fail "link 2 did not resume from link 1's checkpoint (see $log2)"
grep -q "already complete" "$log3" || t_fail "link 3 did not say 'already complete' (see $log3)"
t_compare "$W/run/output.h5" "$W/direct.h5"
t_log "ok: link 1 checkpointed (75), link 2 resumed and completed, link 3 found the run complete"
