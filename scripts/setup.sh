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
# The torch problem's tests, example and benchmark (nhgd.torch) need PyTorch (CPU, ~180 MB).
[[ $mode == test || $mode == bench* ]] && packages+=(python3-torch)
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
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNHGD_WERROR=ON "$@" &&
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
  # The stages run side by side, in lanes: a lane is a build directory and the tests run in
  # it, in order (a failed stage skips the rest of its lane). Much of a test run is waiting
  # (Open MPI's mpirun sleeps about 2 s after a rank exits non-zero, the SLURM tests wait for
  # requeues), so the lanes overlap well even on 2 cores (docs/testing.md has the times).
  # Each stage's output goes to ci-logs/STAGE.log, not to the screen; the screen gets a line
  # as each stage starts and ends, then a summary that names the failed stages with the end
  # of their logs. The exit code is 1 when any stage failed or was skipped.
  logs=$PWD/ci-logs
  rm -rf "$logs"
  mkdir -p "$logs"
  # Lanes run MPI jobs at the same time, so more ranks than cores: ranks that wait must yield
  # the core rather than poll (Open MPI does so by itself only when one mpirun oversubscribes;
  # polling ranks of several jobs on 2 cores run about 100 times slower).
  export OMPI_MCA_mpi_yield_when_idle=1
  in_dir() { # in_dir DIR COMMAND...
    (cd "$1" && shift && "$@")
  }
  # stage NAME COMMAND...: run it, its output in ci-logs/NAME.log, its exit code and seconds
  # in ci-logs/NAME.result.
  stage() {
    local name=$1 t0=$SECONDS rc=0
    shift
    echo "setup: $(date +%T) $name started (ci-logs/$name.log)"
    "$@" >"$logs/$name.log" 2>&1 </dev/null || rc=$?
    echo "$rc $((SECONDS - t0))" >"$logs/$name.result"
    if [ $rc -eq 0 ]; then
      echo "setup: $(date +%T) $name passed in $((SECONDS - t0)) s"
    else
      echo "setup: $(date +%T) $name FAILED (exit $rc) in $((SECONDS - t0)) s: see ci-logs/$name.log"
    fi
    return $rc
  }
  # What each stage runs: run_NAME (its dashes as underscores).
  # The C sources as .clang-format asks (a few seconds; lists the files to reformat).
  run_format() { scripts/check-format.sh; }
  run_build() { build build; }
  # Everything but slow, slurm and faults (those run in the builds below).
  run_tests() { in_dir build ctest --output-on-failure -j "$jobs" -LE "slow|slurm|faults"; }
  # The fault tests (label faults) in a build with fault injection compiled in: the defects,
  # a full disk, divergence and rollbacks, kill -9 chaos, and the injection sweep at 1, 2 and
  # 4 ranks. The sweep tries at most NHGD_SWEEP_MAX values per kind and rank (8 here, 60 by
  # default), shifted by the commit, so that successive commits cover different values.
  sweep_seed=$((16#$(git rev-parse --short=6 HEAD 2>/dev/null || echo 0)))
  run_faults_build() {
    build build-faults -DNHGD_FAULTS=ON -DNHGD_TEST_AREAS=faults -DNHGD_BUILD_BENCH=OFF
  }
  run_faults() {
    in_dir build-faults env NHGD_SWEEP_MAX="${NHGD_SWEEP_MAX:-8}" \
      NHGD_SWEEP_SEED="${NHGD_SWEEP_SEED:-$sweep_seed}" ctest --output-on-failure -j "$jobs" -L faults
  }
  # The fast tests again under AddressSanitizer and UndefinedBehaviorSanitizer. Open MPI's
  # own allocations at exit are reported as leaks, so leak detection is off.
  run_asan_build() { build build-asan -DNHGD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug; }
  run_asan() {
    in_dir build-asan env ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j "$jobs" -L fast
  }
  # libFuzzer on the options-file parser, the LIBSVM and IDX importers, the data-file reader
  # and the checkpoint reader, 20 s each from the committed seed corpora.
  run_fuzz_build() {
    build build-fuzz -DCMAKE_C_COMPILER=clang -DNHGD_FUZZ=ON -DNHGD_TEST_AREAS=fuzz \
      -DNHGD_BUILD_BENCH=OFF
  }
  run_fuzz() { in_dir build-fuzz ctest --output-on-failure -L fuzz; }
  # SLURM, in a build of its own (the same program; one ctest per build directory): the tests
  # start a real single-node cluster (scripts/slurm-local.sh) as a fixture and stop it after
  # the last one; the slow time-limit test is left out (about 2 minutes). NHGD_TEST_SLURM=0
  # skips the lane, on a machine where slurmctld cannot run.
  run_slurm_build() { build build-slurm -DNHGD_TEST_AREAS=slurm -DNHGD_BUILD_BENCH=OFF; }
  run_slurm() { in_dir build-slurm ctest --output-on-failure -L slurm -LE slow; }
  # lane STAGE...: the stages in order; after a failure the rest are marked skipped.
  lane() {
    local name
    while [ $# -gt 0 ]; do
      name=$1
      shift
      stage "$name" "run_${name//-/_}" && continue
      for name in "$@"; do
        echo "skipped 0" >"$logs/$name.result"
      done
      return 1
    done
  }
  lanes=("format" "build tests" "faults-build faults" "asan-build asan" "fuzz-build fuzz")
  [ "${NHGD_TEST_SLURM:-1}" = 1 ] && lanes+=("slurm-build slurm")
  pids=()
  for l in "${lanes[@]}"; do
    (
      # The lanes with slack give way (nice 5) to the longest one, build and tests, and to
      # fuzz, whose runs are bounded in wall time (20 s each): it runs about as many inputs as
      # it would alone.
      case $l in
      "build tests" | "fuzz-build fuzz") ;;
      *) renice -n 5 -p "$BASHPID" >/dev/null ;;
      esac
      # shellcheck disable=SC2086 # a lane is its stage names, split on blanks
      lane $l
    ) &
    pids+=($!)
  done
  wait "${pids[@]}" || true
  # The summary: every stage, its result and seconds; the end of each failed stage's log.
  failed=()
  echo "setup: stage            result       seconds"
  for l in "${lanes[@]}"; do
    for name in $l; do
      read -r rc secs 2>/dev/null <"$logs/$name.result" || rc="not-run" secs=0
      case $rc in
      0) result=passed ;;
      skipped) result=skipped failed+=("$name") ;;
      not-run) result="not run" failed+=("$name") ;;
      *) result="FAILED ($rc)" failed+=("$name") ;;
      esac
      printf 'setup: %-16s %-12s %7s\n' "$name" "$result" "$secs"
    done
  done
  echo "setup: total $SECONDS s (stages side by side; logs in ci-logs/)"
  if [ ${#failed[@]} -gt 0 ]; then
    for name in "${failed[@]}"; do
      [ -s "$logs/$name.log" ] || continue
      echo "setup: ---- last 60 lines of ci-logs/$name.log"
      tail -n 60 "$logs/$name.log"
    done
    echo "setup: failed or skipped: ${failed[*]}"
    exit 1
  fi
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
