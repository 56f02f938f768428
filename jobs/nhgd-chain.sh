#!/usr/bin/env bash
# Submit N dependent links of jobs/nhgd.sbatch on one run directory, for runs longer than the queue's time limit.
#
# usage: jobs/nhgd-chain.sh N [sbatch options...]
#
#   NHGD_RUN_DIR=$PWD/long NHGD_ARGS="--data fmnist.h5 --outer-steps 5000" \
#     jobs/nhgd-chain.sh 5 --time=04:00:00 --ntasks=4 --overcommit
#
# Link i+1 starts after link i has ended, whatever its exit (--dependency=afterany), and
# resumes from the newest checkpoint in NHGD_RUN_DIR; a link that finds the run complete
# rewrites the output and exits 0 at once. Links are submitted with --no-requeue, so each one
# is a single allocation: at its time limit it checkpoints (--signal=B:USR1@120) and leaves
# the rest to the next link. Set NHGD_CHAIN_REQUEUE=1 to let links requeue themselves too.
# Prints the job ids, one per line, in order. NHGD_RUN_DIR defaults to
# $PWD/nhgd-chain-<date-time>; the other knobs are those of jobs/nhgd.sbatch.
set -euo pipefail

usage() {
  echo "usage: $(basename "$0") N [sbatch options...]   (N >= 1 links)" >&2
  exit 2
}
[ $# -ge 1 ] || usage
n=$1
shift
[[ "$n" =~ ^[1-9][0-9]*$ ]] || usage

jobs_dir=$(cd "$(dirname "$0")" && pwd)
script=$jobs_dir/nhgd.sbatch
[ -f "$script" ] || {
  echo "nhgd-chain.sh: $script not found" >&2
  exit 2
}
NHGD_RUN_DIR=$(realpath -m -- "${NHGD_RUN_DIR:-$PWD/nhgd-chain-$(date +%Y%m%d-%H%M%S)}")
export NHGD_RUN_DIR
mkdir -p "$NHGD_RUN_DIR"
requeue=(--no-requeue)
[ "${NHGD_CHAIN_REQUEUE:-0}" = 1 ] && requeue=()

prev=""
for ((i = 1; i <= n; ++i)); do
  dep=()
  [ -z "$prev" ] || dep=(--dependency="afterany:$prev")
  out=$(sbatch --parsable --job-name="nhgd-chain-$i" "${requeue[@]}" "${dep[@]}" "$@" "$script") || {
    echo "nhgd-chain.sh: sbatch failed for link $i of $n${prev:+ (links submitted so far end with $prev)}" >&2
    exit 1
  }
  prev=${out%%;*}
  echo "$prev"
done
echo "nhgd-chain.sh: $n links on run directory $NHGD_RUN_DIR" >&2
