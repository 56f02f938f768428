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
