#!/usr/bin/env bash
# The benchmark suite: every estimator side by side on the same data, machine and clock.
# Runs the sections in bench/suite/, fits the scaling model, then writes CSV files, PNG plots
# and summary.md to bench/results/suite/, and the suite's block (between the suite-results
# markers) of bench/results/README.md.
# usage: bench/suite.sh [--quick] [--ranks P] [section ...]
#   environment: NHGD_BENCH_RESULTS (folder of results/, default bench/results),
#   NHGD_SUITE_README (the file whose block is rewritten, default README.md in the results
#   folder; created if missing), NHGD_BUILD, NHGD_BENCH_WORK
#   sections: fmnist budget hpo accuracy scaling kernels (default: all); --quick: one seed and short
#   runs, a check that everything works (its numbers are not for quoting).
source "$(dirname "$0")/common.sh"
args="$*"
quick=0
P=2
sections=()
while [ $# -gt 0 ]; do
  case $1 in
  --quick) quick=1 ;;
  --ranks)
    [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || {
      echo "suite: --ranks needs a positive whole number" >&2
      exit 2
    }
    P=$2 && shift
    ;;
  fmnist | budget | hpo | accuracy | scaling | kernels) sections+=("$1") ;;
  *)
    echo "usage: bench/suite.sh [--quick] [--ranks P] [fmnist|budget|hpo|accuracy|scaling|kernels ...]" >&2
    exit 2
    ;;
  esac
  shift
done
[ ${#sections[@]} -gt 0 ] || sections=(fmnist budget hpo accuracy scaling kernels)
if ! $python -c "import matplotlib, h5py, numpy" 2>/dev/null; then
  echo "suite: $python needs matplotlib, h5py and numpy (Debian: python3-matplotlib python3-h5py python3-numpy)" >&2
  exit 1
fi
export NHGD_SUITE_OUT=$results/suite NHGD_SUITE_QUICK=$quick NHGD_SUITE_RANKS=$P
out=$NHGD_SUITE_OUT
# dirty: "+changes" when the code differs from the commit (the suite's own outputs aside).
dirty() { git -C "$root" diff --quiet -- . ':!bench/results' ':!README.md' || echo '+changes'; }
mkdir -p "$out"
start=$(date +%s)
# A section run alone keeps the other sections' results and settings.
meta=$out/meta.txt
touch "$meta"
for s in "${sections[@]}"; do
  sed -i "/^setting\.$s=/d; /^run\.$s=/d" "$meta"
  [ "$s" = fmnist ] && sed -i '/^fmnist_targets=/d' "$meta"
done
grep '^setting\.\|^run\.\|^fmnist_targets=' "$meta" >"$meta.keep" || true
{
  echo "machine=$(machine_desc)"
  echo "date=$(date -u +%Y-%m-%d)"
  echo "commit=$(git -C "$root" rev-parse --short HEAD)$(dirty)"
  echo "command=bench/suite.sh${args:+ $args}"
  echo "ranks=$P"
  echo "quick=$quick"
  cat "$meta.keep"
} >"$meta"
rm -f "$meta.keep"
for s in "${sections[@]}"; do
  echo "suite: $s ($(date -u +%H:%M:%S))"
  t0=$(date +%s)
  bash "$bench_dir/suite/$s.sh" || {
    echo "suite: section $s failed" >&2
    exit 1
  }
  # When and at which commit each section's numbers were measured (sections can be rerun
  # alone).
  mode=""
  [ "$quick" = 1 ] && mode=", --quick"
  echo "run.$s=$(date -u +%Y-%m-%d), commit $(git -C "$root" rev-parse --short HEAD)$(dirty), $P ranks, $((($(date +%s) - t0 + 59) / 60)) min$mode" >>"$meta"
done
if [ -f "$out/scaling.csv" ]; then
  $python "$bench_dir/suite/model.py" "$out" || exit 1
  sed -i '/^setting\.model=/d' "$meta"
  echo "setting.model=bench/suite/model.py fitted to scaling.csv, comm.csv and dgemm.csv of the scaling section (assumptions below)." >>"$meta"
fi
echo "minutes=$((($(date +%s) - start + 59) / 60))" >>"$meta"
$python "$bench_dir/suite/report.py" "$out" "${NHGD_SUITE_README:-$results/README.md}" || exit 1
echo "suite: done in $((($(date +%s) - start) / 60)) min; summary in $out/summary.md"
