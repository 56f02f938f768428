# Shared set-up of the benchmark scripts: build, paths, mpirun, and the machine record.
# Sourced, not run. Results go to bench/results/; reruns overwrite them in place.
set -u
bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$bench_dir/.." && pwd)
build=${NHGD_BUILD:-$root/build}
results=${NHGD_BENCH_RESULTS:-$bench_dir/results}
work=${NHGD_BENCH_WORK:-$root/build/bench-work}
mkdir -p "$results" "$work"
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3 # Debian's h5py and numpy live there
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ ! -x "$build/nhgd" ] || [ ! -x "$build/bench/dgemm_rate" ] || [ ! -x "$build/bench/comm_rate" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j "$(nproc)" >/dev/null
fi
nhgd=$build/nhgd
mpirun_n() { mpirun --oversubscribe -n "$@"; }

# machine_desc: host, CPU, cores, memory, MPI and BLAS threads.
machine_desc() {
  local cpu
  cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
  echo "$(hostname) ($cpu, $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB)," \
    "Open MPI $(mpirun --version 2>/dev/null | head -1 | awk '{print $NF}'), OPENBLAS_NUM_THREADS=1"
}

# machine_record: a markdown paragraph saying where and when the numbers were measured.
machine_record() {
  echo "Measured on $(machine_desc)," \
    "$(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo '+changes')."
}

# h5get FILE EXPR: evaluate a Python expression on the open file f (h5py), print it.
h5get() {
  $python -c "import h5py, numpy as np, sys; f = h5py.File(sys.argv[1], 'r'); print($2)" "$1"
}

# step_seconds FILE STEPS: solver seconds per outer step over outer steps 1 to STEPS of an
# output (step 0, with its start-up, left out).
step_seconds() {
  h5get "$1" "(f['history/solver_time'][$2] - f['history/solver_time'][0]) / $2"
}

# scale_data N: make (once) the synthetic 784 x 10 hyper-cleaning set with N training rows,
# 5,000 validation and 10,000 test rows that the scaling benchmarks share.
scale_data() {
  [ -f "$work/scale_$1.h5" ] || "$nhgd" data synth --kind logistic --n-train "$1" --n-val 5000 \
    --n-test 10000 --features 784 --classes 10 --seed 1 --output "$work/scale_$1.h5" >/dev/null
}

# main_job_step P N STEPS OUT [option ...]: the main job (jobs/hyperclean_fmnist.cfg) with
# the options on P ranks and scale_data N's set for STEPS + 1 outer steps, evaluation off,
# output to OUT; prints its solver seconds per outer step (step_seconds).
main_job_step() {
  local np=$1 n=$2 k=$3 out=$4
  shift 4
  mpirun_n "$np" "$nhgd" run --config "$root/jobs/hyperclean_fmnist.cfg" \
    --data "$work/scale_$n.h5" "$@" --outer-steps $((k + 1)) --eval-every 0 --log-level 1 \
    --output "$out" || return 1
  step_seconds "$out" "$k"
}

# stage_seconds FILE STAGE: the slowest rank's total seconds in a timing stage of an output.
stage_seconds() {
  $python - "$1" "$2" <<'PY'
import sys, h5py
t = h5py.File(sys.argv[1], "r")["timing"]
names = t.attrs["stages"]
names = (names.decode() if isinstance(names, bytes) else str(names)).split(",")
print(t["max"][names.index(sys.argv[2])])
PY
}
