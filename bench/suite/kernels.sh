#!/usr/bin/env bash
# Suite section 5: EFIM kernel efficiency, bench/efim_kernels.sh run into the suite's folder.
# Writes kernels.csv.
source "$(dirname "$0")/../common.sh"
source "$(dirname "$0")/lib.sh"
NHGD_BENCH_RESULTS=$out bash "$bench_dir/efim_kernels.sh" "$P" "$(pick "1000 2000 4000 8000" "1000 2000")" \
  "$(pick "250 500 1000 2000" "250 500")" \
  >/dev/null || exit 1
mv "$out/efim_kernels.csv" "$out/kernels.csv"
rm -f "$out/efim_kernels.md"
echo "setting.kernels=bench/efim_kernels.sh $P: ridge data with d features (dense per-sample gradients), global batch 256, 6 inner steps, no overlap; time = the slowest rank's curvature stage per inner step; useful flops per step: online 4 d^2 B + 2 d B^2, accumulate d^2 B (lower triangle); DGEMM measured in the same run, every rank at once, on the shape of one rank's share of the online update (d x d/P) += (d x B)(B x d/P), median of 15, measured before and after the routes' runs, the higher of the two. kfac (logistic data, C = 10, d = m C, problem logreg): kfac-accumulate = curvature stage per inner step, useful flops (m^2 + C^2) B / P per rank; kfac-solve = solve stage per outer step, useful flops ceil(C/P) m^3 / 3 per rank; its DGEMM reference has the shape of one rank's DSYRK, (m x m) += (m x B/P)(B/P x m)." >>"$out/meta.txt"
