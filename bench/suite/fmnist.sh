#!/usr/bin/env bash
# Suite section 1: hyper-cleaning on Fashion-MNIST (docs/algorithm.md section 6) with every
# estimator, several seeds, and plain models on the noisy labels (floor) and on clean labels
# (ceiling). Writes fmnist.csv: one row per outer step of every run.
source "$(dirname "$0")/../common.sh"
source "$(dirname "$0")/lib.sh"
seeds=$(pick "0 1 2" "0")
exact_seeds=$(pick "0" "0")
K=$(pick 30 4)
K_exact=$(pick 30 2)
cfg=$root/jobs/hyperclean_fmnist.cfg
declare -A est=(
  [nhgd]="--estimator nhgd"
  [nhgd-r1]="--estimator nhgd --kfac-refresh 1"
  [nhgd-kfac-all]="--estimator nhgd --efim-route kfac --efim-samples 0"
  [nhgd-kfac-empirical]="--estimator nhgd --efim-route kfac --kfac-g empirical"
  [nhgd-gram]="--estimator nhgd --efim-route gram --efim-samples 0"
  [nhgd-gram-k64]="--estimator nhgd --efim-route gram --efim-samples 64"
  [exact]="--estimator exact"
  [cg]="--estimator cg --hvp-steps 10 --hvp-batch 2048"
  [neumann]="--estimator neumann --hvp-steps 20 --hvp-batch 2048 --neumann-eta 0.1"
  [soba]="--estimator soba --soba-rho 0.1"
)
csv=$out/fmnist.csv
echo "method,seed,step,wall_time,solver_time,samples,test_acc,val_loss" >"$csv"
cols=step,wall_time,solver_time,samples,test_acc,val_loss
for s in $seeds; do
  noisy=$(fmnist_data "$s" 0.5) || exit 1
  clean=$(fmnist_data "$s" 0) || exit 1
  o=$work/suite_fmnist.h5
  # Floor and ceiling: every sample weight fixed at sigmoid(0) (outer step size 0), the same
  # inner SGD as the estimators' runs.
  nhgd_run "$P" run --config "$cfg" --data "$noisy" --seed "$s" --outer-steps "$K" \
    --estimator none --outer-lr 0 --output "$o"
  history_rows "$o" "noisy,$s" $cols >>"$csv" || exit 1
  nhgd_run "$P" run --config "$cfg" --data "$clean" --seed "$s" --outer-steps "$K" \
    --estimator none --outer-lr 0 --output "$o"
  history_rows "$o" "clean,$s" $cols >>"$csv" || exit 1
  for m in nhgd nhgd-r1 nhgd-kfac-all nhgd-kfac-empirical nhgd-gram nhgd-gram-k64 cg neumann soba; do
    # shellcheck disable=SC2086
    nhgd_run "$P" run --config "$cfg" --data "$noisy" --seed "$s" --outer-steps "$K" \
      ${est[$m]} --output "$o"
    history_rows "$o" "$m,$s" $cols >>"$csv" || exit 1
  done
done
for s in $exact_seeds; do
  o=$work/suite_fmnist.h5
  # shellcheck disable=SC2086
  data=$(fmnist_data "$s" 0.5) || exit 1
  nhgd_run "$P" run --config "$cfg" --data "$data" --seed "$s" \
    --outer-steps "$K_exact" ${est[exact]} --output "$o"
  history_rows "$o" "exact,$s" $cols >>"$csv" || exit 1
done
{
  echo "setting.fmnist=Protocol of docs/algorithm.md section 6: 20,000 train rows with half the labels redrawn, 5,000 clean validation rows, the 10,000 test images, linear 784 x 10 model, r = 1e-3; the main job's settings (jobs/hyperclean_fmnist.cfg: $K outer steps of plain SGD 5000 on the sampled hypergradient (cross term from the rows inner SGD drew, validation gradient from 1,024 rows drawn per step), 20 inner SGD steps of batch 256, step 0.1, warm start) on $P ranks; seeds $seeds (the seed sets the data draw and the minibatches), exact on seeds $exact_seeds with $K_exact outer steps. Estimators: nhgd (the main job's settings: auto takes the kfac route, G from the model, 64 of each step's 256 samples feed the factors, summed and factored every 10 outer steps), nhgd-r1 (${est[nhgd-r1]}: the same, factors every outer step), nhgd-kfac-all (${est[nhgd-kfac-all]}), nhgd-kfac-empirical (${est[nhgd-kfac-empirical]}, 64 samples), nhgd-gram (${est[nhgd-gram]}: the full empirical Fisher, the default before kfac), nhgd-gram-k64 (${est[nhgd-gram-k64]}), exact, ${est[cg]}, ${est[neumann]}, ${est[soba]} (eta and rho equal to the inner step size, which inner SGD shows is below 2 / lambda_max). noisy: plain model on the noisy labels (every weight sigmoid(0), outer step 0); clean: the same on a copy of the data with no label noise."
  echo "fmnist_targets=0.80,0.81,0.82"
} >>"$out/meta.txt"
