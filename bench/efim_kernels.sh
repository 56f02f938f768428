#!/usr/bin/env bash
# EFIM update throughput of the online and accumulate routes for d = 1,000 .. 8,000, next to
# the DGEMM rate measured in the same run, and the bytes each route received per inner step
# against the O(B d) model. usage: bench/efim_kernels.sh [ranks] ["d values"]   (default 2: one
# per core; d = 1,000 .. 8,000)
source "$(dirname "$0")/common.sh"
P=${1:-2}
DS=${2:-"1000 2000 4000 8000"}
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
  echo
  echo "| d | route | s / step | GFLOP/s per rank | DGEMM GFLOP/s per rank | fraction of DGEMM | bytes / step | model bytes / step |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|"
  tail -n +2 "$csv" | awk -F, '{printf "| %s | %s | %.3f | %.1f | %.1f | %.0f %% | %.3g | %.3g |\n", $1, $2, $6, $7, $8, 100*$9, $10, $11}'
} >"$out"
cat "$out"
