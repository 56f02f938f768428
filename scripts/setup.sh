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
  librandom123-dev libcmocka-dev dataset-fashion-mnist python3 python3-numpy python3-h5py)
[[ $mode == bench* ]] && packages+=(python3-matplotlib)
[[ $mode == test ]] && packages+=(clang libclang-rt-14-dev)
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
  build build
  (cd build && ctest --output-on-failure -j "$jobs" -LE "slow|slurm")
  # The fast tests again under AddressSanitizer and UndefinedBehaviorSanitizer. Open MPI's
  # own allocations at exit are reported as leaks, so leak detection is off.
  build build-asan -DNHGD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j "$jobs" -L fast)
  # libFuzzer on the options-file parser and the LIBSVM and IDX importers, 20 s each from
  # the committed seed corpora.
  build build-fuzz -DCMAKE_C_COMPILER=clang -DNHGD_FUZZ=ON -DNHGD_TEST_AREAS=fuzz \
    -DNHGD_BUILD_BENCH=OFF
  (cd build-fuzz && ctest --output-on-failure -L fuzz)
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
