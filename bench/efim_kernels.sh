#!/usr/bin/env bash
# EFIM update throughput of the online and accumulate routes for d = 1,000 .. 8,000, and of
# the kfac route's factor accumulation and class solves for m = 250 .. 2,000 features (C = 10),
# next to the DGEMM rate measured in the same run, and the bytes each route received per inner
# step against the O(B d) model. usage: bench/efim_kernels.sh [ranks] ["d values"] ["m values"]
# (default 2: one per core; d = 1,000 .. 8,000; m = 250 .. 2,000)
source "$(dirname "$0")/common.sh"
P=${1:-2}
DS=${2:-"1000 2000 4000 8000"}
MS=${3:-"250 500 1000 2000"}
KC=10
B=256
T=6
out=$results/efim_kernels.md
csv=$results/efim_kernels.csv
echo "d,route,ranks,batch,steps,seconds_per_step,gflops_per_rank,dgemm_gflops_per_rank,fraction,bytes_per_step,model_bytes_per_step" >"$csv"
for d in $DS; do
  data=$work/efim_ridge_$d.h5
  [ -f "$data" ] || "$nhgd" data synth --kind ridge --features "$d" --n-train 1024 --n-val 64 \
    --n-test 0 --seed 1 --output "$data" >/dev/null
  # The DGEMM one rank does in an online step: (d x d/P) += (d x B)(B x d/P), measured before
  # and after the routes' runs; the reference is the higher (load from elsewhere only lowers it).
  dgemm() { mpirun_n "$P" "$build/bench/dgemm_rate" "$d" $(((d + P - 1) / P)) "$B" 15; }
  dg=$(dgemm)
  runs=()
  for route in online accumulate; do
    o=$work/efim_${route}_$d.h5
    mpirun_n "$P" "$nhgd" hypergrad --data "$data" --problem ridge --estimator nhgd \
      --efim-route "$route" --inner-steps "$T" --batch "$B" --inner-lr 1e-4 --overlap 0 \
      --log-level 1 --output "$o" || exit 1
    runs+=("$route $($python -c "print($(stage_seconds "$o" curvature) / $T)") $(h5get "$o" "f.attrs['estimator_bytes_per_inner_step']")")
  done
  dg=$($python -c "print(max($dg, $(dgemm)))")
  for run in "${runs[@]}"; do
    read -r route sec bytes <<<"$run"
    $python - "$d" "$route" "$P" "$B" "$T" "$sec" "$dg" "$bytes" >>"$csv" <<'PY'
import sys
d, route, P, B, T = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
sec, dg, nbytes = float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
# Useful flops per step, all ranks: online = 2 d^2 B (A U) + 2 d^2 B (A -= Y Y^T) + 2 d B^2
# (U^T W); accumulate = d^2 B (the lower triangle of a rank-B update).
flops = 4.0 * d * d * B + 2.0 * d * B * B if route == "online" else 1.0 * d * d * B
rate = flops / P / sec / 1e9
width = 1 + d  # doubles per sample in transit: scale and the d-vector
model = 8.0 * B * width * (P - 1) / P + (8.0 * d * B if route == "online" else 0.0)
print(f"{d},{route},{P},{B},{T},{sec:.4f},{rate:.2f},{dg:.2f},{rate / dg:.3f},{nbytes:.0f},{model:.0f}")
PY
  done
done
# kfac: each rank sums its own samples into A (m x m, DSYRK) and G during the inner loop; the
# solve factors the C class systems (m x m Cholesky each), ceil(C/P) per rank.
for m in $MS; do
  data=$work/efim_logistic_$m.h5
  [ -f "$data" ] || "$nhgd" data synth --kind logistic --features "$m" --classes "$KC" \
    --n-train 1024 --n-val 64 --n-test 0 --seed 1 --output "$data" >/dev/null
  dgemm() { mpirun_n "$P" "$build/bench/dgemm_rate" "$m" "$m" $((B / P)) 15; }
  dg=$(dgemm)
  o=$work/efim_kfac_$m.h5
  mpirun_n "$P" "$nhgd" hypergrad --data "$data" --problem logreg --estimator nhgd \
    --efim-route kfac --inner-steps "$T" --batch "$B" --inner-lr 1e-4 --log-level 1 \
    --output "$o" || exit 1
  acc=$($python -c "print($(stage_seconds "$o" curvature) / $T)")
  sol=$(stage_seconds "$o" solve)
  bytes=$(h5get "$o" "f.attrs['estimator_bytes_per_inner_step']")
  dg=$($python -c "print(max($dg, $(dgemm)))")
  $python - "$m" "$KC" "$P" "$B" "$T" "$acc" "$sol" "$dg" "$bytes" >>"$csv" <<'PY'
import math, sys
m, C, P, B, T = (int(v) for v in sys.argv[1:6])
acc, sol, dg, nbytes = (float(v) for v in sys.argv[6:10])
d = m * C
# Useful flops: accumulate m^2 B + C^2 B per step (lower triangles), over all ranks; solve
# ceil(C/P) m^3 / 3 per rank (the busiest) for the Cholesky factorisations.
rate_acc = (m * m + C * C) * B / P / acc / 1e9
rate_sol = math.ceil(C / P) * m ** 3 / 3.0 / sol / 1e9
model = 8.0 * (m * (m + 1) / 2 + C * (C + 1) / 2 + 2 + m * C + 1) / T
print(f"{d},kfac-accumulate,{P},{B},{T},{acc:.4f},{rate_acc:.2f},{dg:.2f},{rate_acc / dg:.3f},{nbytes:.0f},{model:.0f}")
print(f"{d},kfac-solve,{P},{B},{T},{sol:.4f},{rate_sol:.2f},{dg:.2f},{rate_sol / dg:.3f},{nbytes:.0f},{model:.0f}")
PY
done
{
  echo "# EFIM update throughput against DGEMM"
  echo
  machine_record
  echo
  echo "Command: \`bench/efim_kernels.sh $P\`. Ridge data with d features (dense per-sample"
  echo "gradients), global batch B = $B, $T inner steps, no overlap; time = the slowest rank's"
  echo "curvature stage per inner step (per-sample gradients, all-gather, update). Useful flops per"
  echo "step: online 4 d^2 B + 2 d B^2, accumulate d^2 B (lower triangle). DGEMM: every rank at once"
  echo "on the shape of its share of the online update, (d x d/P) += (d x B)(B x d/P), median of 15,"
  echo "measured before and after the routes' runs, the higher of the two."
  echo "Bytes: payload each rank received from the estimator's collectives per inner step; the"
  echo "model is B (1+d) 8 (P-1)/P for the all-gather of the samples plus d B 8 for the online"
  echo "route's all-reduce of A U: O(B d), against the 8 d^2 / P = $(($((8000 * 8000 * 8)) / P / 1048576)) MiB at d = 8,000 that moving F would cost."
  echo "kfac rows (logistic data, m features, C = $KC classes, d = m C, problem logreg):"
  echo "kfac-accumulate = the curvature stage per inner step (this rank's forward pass, DSYRK of"
  echo "A and G; useful flops (m^2 + C^2) B / P per rank); kfac-solve = the solve stage of the"
  echo "outer step (allreduce of the partials, eigen-decomposition of G, ceil(C/P) Cholesky"
  echo "factorisations of m x m per rank: useful flops ceil(C/P) m^3 / 3); DGEMM on the shape of"
  echo "one rank's DSYRK, (m x m) += (m x B/P)(B/P x m). kfac's bytes: the once-per-outer-step"
  echo "allreduces spread over the T inner steps; nothing moves during the inner loop."
  echo
  echo "| d | route | s / step | GFLOP/s per rank | DGEMM GFLOP/s per rank | fraction of DGEMM | bytes / step | model bytes / step |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|"
  tail -n +2 "$csv" | awk -F, '{printf "| %s | %s | %.3f | %.1f | %.1f | %.0f %% | %.3g | %.3g |\n", $1, $2, $6, $7, $8, 100*$9, $10, $11}'
} >"$out"
cat "$out"
