#!/usr/bin/env bash
# One-command set-up: install missing Debian 12 packages, build, then either run the main
# job (`demo`), the test suite (`test`) or the benchmark suite (`bench`, about 55 minutes;
# `bench-quick` for a short check). Usage: scripts/setup.sh {demo|test|bench|bench-quick} [ranks]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-demo}
ranks=${2:-2}

packages=(build-essential cmake pkg-config git openmpi-bin libopenmpi-dev
  libscalapack-openmpi-dev libopenblas-dev libhdf5-openmpi-dev hdf5-tools zlib1g-dev
  librandom123-dev libcmocka-dev dataset-fashion-mnist python3 python3-numpy python3-h5py
  python3-dev python3-cffi python3-mpi4py)
[[ $mode == bench* ]] && packages+=(python3-matplotlib)
[[ $mode == test ]] && packages+=(clang clang-format libclang-rt-14-dev slurmctld slurmd slurm-client
  munge)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Open MPI refuses to run as root unless told; one rank per core is the default layout.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=1
jobs=$(nproc)

build() { # build DIR [cmake options]
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNHGD_WERROR=ON "$@"
  cmake --build "$dir" -j "$jobs"
}

case "$mode" in
demo)
  build build
  mkdir -p run
  if [ ! -f run/fashion_mnist.h5 ]; then
    build/nhgd data fashion-mnist --output run/fashion_mnist.h5
  fi
  mpirun --oversubscribe -n "$ranks" build/nhgd run --config jobs/hyperclean_fmnist.cfg \
    --data run/fashion_mnist.h5 --output run/hyperclean_fmnist.h5 \
    --metrics run/hyperclean_fmnist.jsonl
  ;;
test)
  # Each stage's wall time is printed at the end (and as it ends).
  times=()
  stage() { # stage NAME COMMAND...: run it, record its seconds
    local name=$1 t0=$SECONDS
    shift
    echo "setup: stage $name"
    "$@"
    times+=("$name $((SECONDS - t0)) s")
    echo "setup: stage $name done in $((SECONDS - t0)) s"
  }
  in_dir() { # in_dir DIR COMMAND...
    (cd "$1" && shift && "$@")
  }
  # The C sources as .clang-format asks (a few seconds; lists the files to reformat).
  stage format scripts/check-format.sh
  stage build build build
  # Everything but slow, slurm and faults (those run in the fault build below).
  stage tests in_dir build ctest --output-on-failure -j "$jobs" -LE "slow|slurm|faults"
  # The fault tests (label faults) in a build with fault injection compiled in: the defects,
  # a full disk, divergence and rollbacks, kill -9 chaos, and the injection sweep at 1, 2 and
  # 4 ranks. The sweep tries at most NHGD_SWEEP_MAX values per kind and rank (8 here, 60 by
  # default), shifted by the commit, so that successive commits cover different values.
  sweep_seed=$((16#$(git rev-parse --short=6 HEAD 2>/dev/null || echo 0)))
  stage faults-build build build-faults -DNHGD_FAULTS=ON -DNHGD_TEST_AREAS=faults \
    -DNHGD_BUILD_BENCH=OFF
  stage faults in_dir build-faults env NHGD_SWEEP_MAX="${NHGD_SWEEP_MAX:-8}" \
    NHGD_SWEEP_SEED="${NHGD_SWEEP_SEED:-$sweep_seed}" ctest --output-on-failure -j "$jobs" -L faults
  # The fast tests again under AddressSanitizer and UndefinedBehaviorSanitizer. Open MPI's
  # own allocations at exit are reported as leaks, so leak detection is off.
  stage asan-build build build-asan -DNHGD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  stage asan in_dir build-asan env ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j "$jobs" -L fast
  # libFuzzer on the options-file parser, the LIBSVM and IDX importers, the data-file reader
  # and the checkpoint reader, 20 s each from the committed seed corpora.
  stage fuzz-build build build-fuzz -DCMAKE_C_COMPILER=clang -DNHGD_FUZZ=ON -DNHGD_TEST_AREAS=fuzz \
    -DNHGD_BUILD_BENCH=OFF
  stage fuzz in_dir build-fuzz ctest --output-on-failure -L fuzz
  # SLURM: the tests start a real single-node cluster (scripts/slurm-local.sh) as a fixture and
  # stop it after the last one; the slow time-limit test is left out (about 2 minutes).
  # NHGD_TEST_SLURM=0 skips the stage, on a machine where slurmctld cannot run.
  if [ "${NHGD_TEST_SLURM:-1}" = 1 ]; then
    stage slurm in_dir build ctest --output-on-failure -L slurm -LE slow
  fi
  echo "setup: stage times: $(printf '%s; ' "${times[@]}")total $SECONDS s"
  ;;
bench | bench-quick)
  build build
  quick=()
  [ "$mode" = bench-quick ] && quick=(--quick)
  bench/suite.sh "${quick[@]}" --ranks "$ranks"
  ;;
*)
  echo "usage: scripts/setup.sh {demo|test|bench|bench-quick} [ranks]" >&2
  exit 2
  ;;
esac
