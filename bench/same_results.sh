#!/usr/bin/env bash
# Do two builds give the same results? Runs a set of short jobs with each program (the main
# job with checkpoints, a stop at --halt-after and its resume, the baselines on logreg, a
# network, distill, a rollback of --on-divergence halve and the gram route) and compares
# every output and checkpoint byte for byte (bench/compare_bytes.py; wall-clock fields left
# out). For refactorings that must not change behaviour: build the old commit elsewhere and
# pass both programs. Writes bench/results/same_results.md.
# usage: bench/same_results.sh OLD_NHGD NEW_NHGD
set -u
. "$(dirname "$0")/common.sh"
old=$(readlink -f "$1") new=$(readlink -f "$2")
w=$work/same_results
mkdir -p "$w"
data=$w/fashion_mnist.h5
[ -f "$data" ] || "$new" data fashion-mnist --output "$data" >/dev/null || exit 1
cfg=$root/jobs/hyperclean_fmnist.cfg

runs() { # runs PROGRAM DIR
  local bin=$1 d=$2
  rm -rf "$d" && mkdir -p "$d"
  r() {
    local name=$1 np=$2
    shift 2
    mpirun_n "$np" "$bin" run "$@" --output "$d/$name.h5" >"$d/$name.log" 2>&1
    echo "$name exit $?" >>"$d/exits"
  }
  r main 2 --config "$cfg" --data "$data" --outer-steps 8 --checkpoint-dir "$d/ck_main" --keep 2
  r halted 2 --config "$cfg" --data "$data" --outer-steps 8 --checkpoint-dir "$d/ck_halt" --halt-after 50
  r resumed 2 --config "$cfg" --data "$data" --outer-steps 8 --checkpoint-dir "$d/ck_halt"
  for e in exact cg soba neumann none; do
    r "logreg_$e" 2 --problem logreg --data "$data" --estimator "$e" --outer-steps 3 \
      --inner-steps 5 --batch 64
  done
  r mlp 2 --problem mlp-hyperclean --hidden 32 --data "$data" --outer-steps 3 --inner-steps 5 \
    --batch 64
  r distill 1 --problem distill --data "$data" --outer-steps 3 --inner-steps 5 --batch 64
  r halve 2 --config "$cfg" --data "$data" --outer-steps 4 --inner-lr 50 --on-divergence halve \
    --checkpoint-dir "$d/ck_halve"
  r gram 2 --config "$cfg" --data "$data" --outer-steps 3 --efim-route gram --kfac-refresh 1
}
runs "$old" "$w/old"
runs "$new" "$w/new"

out=$results/same_results.md
fail=0
{
  echo "# Same results: $old against $new (name the commits of each when you commit this file)"
  echo
  echo "$(date -u +%F), $(machine_desc). Exit codes: old $(tr '\n' ' ' <"$w/old/exits")"
  echo
  if ! diff -q "$w/old/exits" "$w/new/exits" >/dev/null; then
    echo "exit codes differ: new $(tr '\n' ' ' <"$w/new/exits")"
    fail=1
  fi
  echo '```'
  for f in "$w"/old/*.h5 "$w"/old/ck_*/*.h5; do
    g=$w/new/${f#"$w"/old/}
    $python "$bench_dir/compare_bytes.py" "$f" "$g" | sed "s#$w/##g" || fail=1
  done
  echo '```'
  [ $fail = 0 ] && echo "All identical." || echo "DIFFERENCES: see above."
} | tee "$out"
exit $fail
