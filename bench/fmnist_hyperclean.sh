#!/usr/bin/env bash
# The hyper-cleaning protocol on Fashion-MNIST (ALGORITHM.md section 6): test accuracy,
# validation loss and wall time of NHGD next to the exact hypergradient, with the accuracy of
# training on the noisy labels without cleaning (v fixed) as the floor.
# usage: bench/fmnist_hyperclean.sh [ranks] ["nhgd seeds"] ["exact seeds"]
source "$(dirname "$0")/common.sh"
P=${1:-2}
NHGD_SEEDS=${2:-"0 1 2"}
EXACT_SEEDS=${3:-"0"}
csv=$results/fmnist_hyperclean.csv
out=$results/fmnist_hyperclean.md
echo "method,seed,outer_steps,test_acc,val_loss,wall_time" >"$csv"
run() { # method seed extra-args...
  local method=$1 seed=$2
  shift 2
  local data=$work/fashion_mnist_seed$seed.h5 o=$work/fmnist_${method}_$seed.h5
  [ -f "$data" ] || "$nhgd" data fashion-mnist --seed "$seed" --output "$data" >/dev/null
  mpirun_n "$P" "$nhgd" run --config "$root/jobs/hyperclean_fmnist.cfg" --data "$data" \
    --seed "$seed" --log-level 1 --output "$o" "$@" || exit 1
  echo "$method,$seed,$(h5get "$o" "len(f['history/step'])"),$(h5get "$o" "f['history/test_acc'][-1]"),$(h5get "$o" "f['history/val_loss'][-1]"),$(h5get "$o" "f['history/wall_time'][-1]")" >>"$csv"
}
for s in $NHGD_SEEDS; do
  run noisy-floor "$s" --estimator none --outer-lr 0
  run nhgd "$s" --estimator nhgd
done
for s in $EXACT_SEEDS; do run exact "$s" --estimator exact; done
{
  echo "# Fashion-MNIST hyper-cleaning: NHGD next to the exact hypergradient"
  echo
  machine_record
  echo
  echo "Command: \`bench/fmnist_hyperclean.sh $P \"$NHGD_SEEDS\" \"$EXACT_SEEDS\"\`. Protocol of"
  echo "ALGORITHM.md section 6 (20,000 train rows, half the labels redrawn, 5,000 validation rows,"
  echo "10,000 test rows, 784 x 10 linear model without bias, r = 1e-3) with the main job's settings"
  echo "(jobs/hyperclean_fmnist.cfg: 30 outer Adam steps of 0.1, 20 inner SGD steps of batch 256)"
  echo "on $P ranks; the seed sets both the data draw and the minibatches. noisy-floor keeps every"
  echo "sample weight at sigmoid(0) = 0.5 (outer step size 0): training on the noisy labels."
  echo "Values are medians over the seeds listed (n = number of seeds)."
  echo
  echo "| method | n | test accuracy | validation loss | wall time (s) |"
  echo "|---|---:|---:|---:|---:|"
  $python - "$csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for m in ["noisy-floor", "nhgd", "exact"]:
    r = [x for x in rows if x["method"] == m]
    if not r:
        continue
    med = lambda k: statistics.median(float(x[k]) for x in r)
    print(f"| {m} | {len(r)} | {med('test_acc'):.4f} | {med('val_loss'):.4f} | {med('wall_time'):.1f} |")
PY
  echo
  echo "Per run:"
  echo
  echo "| method | seed | test accuracy | validation loss | wall time (s) |"
  echo "|---|---:|---:|---:|---:|"
  tail -n +2 "$csv" | awk -F, '{printf "| %s | %s | %.4f | %.4f | %.1f |\n", $1, $2, $4, $5, $6}'
} >"$out"
cat "$out"
