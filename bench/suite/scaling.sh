#!/usr/bin/env bash
# Suite section 4: scaling on 1, 2 and 4 ranks (this machine has $(nproc) cores: more ranks
# than cores are marked oversubscribed). Strong: the main job's data at every rank count.
# Weak: 5,000 training rows and a batch of 64 per rank. Time per stage per outer step (the
# slowest rank), bytes the estimator received per inner step, peak memory per rank. Also
# the collectives' times (comm.csv) and the DGEMM rate (dgemm.csv) the scaling model is
# fitted to. Writes scaling.csv, comm.csv, dgemm.csv.
source "$(dirname "$0")/../common.sh"
source "$(dirname "$0")/lib.sh"
repeats=$(pick 2 1)
K=$(pick 3 2)
T=10
ranks="1 2 4"
csv=$out/scaling.csv
echo "kind,estimator,route,ranks,oversubscribed,n_train,batch,repeat,sec_per_outer,sampling,inner_grad,allreduce,curvature,solve,hypergrad,eval,io,bytes_per_inner_step,max_rss_mib" >"$csv"
o=$work/suite_scaling.h5

# measure KIND NP DATA N BATCH ESTIMATOR ROUTE REPEAT [options]
measure() {
  local kind=$1 np=$2 data=$3 n=$4 B=$5 est=$6 route=$7 r=$8
  shift 8
  nhgd_run "$np" run --config "$root/jobs/hyperclean_fmnist.cfg" --data "$data" \
    --outer-steps "$K" --inner-steps "$T" --batch "$B" --estimator "$est" --efim-route "$route" \
    --eval-every 0 --kfac-refresh 1 "$@" --output "$o"
  local label=$route
  [ "$est" = nhgd ] || label=-
  $python - "$o" "$kind,$est,$label,$np,$((np > cores)),$n,$B,$r" "$K" >>"$csv" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
K = int(sys.argv[3])
w = f["history/wall_time"]
per_outer = (w[-1] - w[0]) / (K - 1)  # the first outer step includes one-off set-up
names = f["timing"].attrs["stages"]
names = names.decode() if isinstance(names, bytes) else str(names)
stages = dict(zip(names.split(","), f["timing/max"][:]))
cols = ["sampling", "inner_grad", "allreduce", "curvature", "solve", "hypergrad", "eval", "io"]
vals = [per_outer] + [stages.get(c, float("nan")) / K for c in cols]
vals += [f.attrs["estimator_bytes_per_inner_step"], f.attrs["max_rss_mib"]]
print(sys.argv[2] + "," + ",".join(f"{v:.6g}" for v in vals))
PY
  [ $? -eq 0 ] || exit 1
}

full=$(fmnist_data 0 0.5) || exit 1
for r in $(seq 1 "$repeats"); do
  for np in $ranks; do
    # Strong: the same 20,000 rows and global batch 256 on every rank count.
    # kfac as the main job runs it (64 of each step's samples feed the factors); the full
    # EFIM routes with every sample.
    measure strong "$np" "$full" 20000 256 nhgd kfac "$r"
    for est in "none auto" "cg auto" "nhgd gram" "nhgd accumulate" "nhgd online"; do
      # shellcheck disable=SC2086
      measure strong "$np" "$full" 20000 256 $est "$r" --hvp-steps 10 --hvp-batch 2048 \
        --efim-samples 0
    done
    # Weak: 5,000 rows and 64 of the batch per rank.
    weak=$(fmnist_data 0 0.5 --n-train $((5000 * np))) || exit 1
    for est in "none auto" "cg auto" "nhgd gram" "nhgd kfac"; do
      # shellcheck disable=SC2086
      measure weak "$np" "$weak" $((5000 * np)) $((64 * np)) $est "$r" --hvp-steps 10 \
        --hvp-batch $((512 * np)) --efim-samples 0
    done
  done
done

# Calibration data of the model: collectives and DGEMM on this machine.
echo "op,ranks,bytes,seconds" >"$out/comm.csv"
for np in 2 4; do mpirun_n "$np" "$build/bench/comm_rate" 7 | tail -n +2 >>"$out/comm.csv"; done
echo "ranks,m,n,k,gflops_per_rank" >"$out/dgemm.csv"
for np in 1 2; do
  for shape in "2000 2000 256" "4000 4000 4000"; do
    # shellcheck disable=SC2086
    echo "$np,${shape// /,},$(mpirun_n "$np" "$build/bench/dgemm_rate" $shape 5)" >>"$out/dgemm.csv"
  done
done
echo "setting.scaling=The main job's problem (hyper-cleaning, jobs/hyperclean_fmnist.cfg) with $K outer steps of $T inner steps, no test evaluation, on 1, 2 and 4 ranks ($cores cores: 4 ranks are oversubscribed), $repeats repeat(s), medians. Strong: 20,000 training rows, global batch 256, estimators none, cg (--hvp-steps 10 --hvp-batch 2048) and nhgd on kfac as the main job runs it (64 of each step's samples feed the factors) and on each full-EFIM route gram, accumulate, online (every sample). Weak: 5,000 rows and 64 of the batch per rank (cg: --hvp-batch 512 per rank), nhgd on the gram and kfac routes with every sample. sec_per_outer = wall time between the end of the first and of the last outer step over $((K - 1)) step(s); stage times = the slowest rank's total over all $K outer steps / $K; bytes = the estimator's collective payload per rank per inner step as the solver counts it (an all-reduce counts its vector once, also on 1 rank); memory = peak resident set of the largest rank." >>"$out/meta.txt"
