#!/usr/bin/env bash
# The benchmark suite end to end in quick mode, into a scratch folder: every section runs,
# the model is fitted, and report.py writes every CSV, plot, the summary and the suite's block
# of the results README (into a copy of bench/results/README.md, where bench/suite.sh writes it
# by default). Checks that the outputs exist and hold what they should.
# usage: suite_quick.sh SOURCE_DIR BUILD_DIR
set -u
src=$1 build=$2
dir=$PWD/bench_suite_quick
rm -rf "$dir" && mkdir -p "$dir/results" || exit 1
readme=$dir/results/README.md
cp "$src/bench/results/README.md" "$readme"
unset NHGD_SUITE_README
export NHGD_BUILD=$build NHGD_BENCH_RESULTS=$dir/results NHGD_BENCH_WORK=$dir/work
bash "$src/bench/suite.sh" --quick >"$dir/log.txt" 2>&1 || {
  echo "FAIL bench/suite.sh --quick"
  tail -30 "$dir/log.txt"
  exit 1
}
failures=0
out=$dir/results/suite
for f in fmnist.csv budget.csv budget_acc_time.png hpo.csv accuracy.csv scaling.csv comm.csv dgemm.csv kernels.csv model.csv \
  model_assumptions.md summary.md fmnist_acc_time.png fmnist_acc_samples.png \
  fmnist_valloss_time.png fmnist_valloss_samples.png hpo_synthetic.png hpo_fmnist.png accuracy_logreg-synthetic.png \
  accuracy_hyperclean-fmnist.png scaling.png model.png kernels.png; do
  if [ -s "$out/$f" ]; then echo "ok   $f"; else
    echo "FAIL $f missing or empty"
    failures=$((failures + 1))
  fi
done
# Every estimator appears in the Fashion-MNIST results, with finite accuracies and solver
# times (the columns found by name).
for m in nhgd exact cg neumann soba noisy clean; do
  n=$(awk -F, -v m="$m" 'NR == 1 { for (i = 1; i <= NF; ++i) col[$i] = i; next }
    $1 == m && $col["test_acc"] + 0 > 0.1 && $col["test_acc"] + 0 <= 1 &&
    $col["solver_time"] + 0 > 0 {c++} END {print c + 0}' "$out/fmnist.csv")
  if [ "$n" -gt 0 ]; then echo "ok   fmnist.csv: $m ($n rows)"; else
    echo "FAIL fmnist.csv: no rows with a test accuracy for $m"
    failures=$((failures + 1))
  fi
done
if grep -q "not run in this suite run" "$out/summary.md"; then
  echo "FAIL summary.md says a section did not run"
  failures=$((failures + 1))
fi
section=$(sed -n '/<!-- suite-results:begin -->/,/<!-- suite-results:end -->/p' "$readme")
if echo "$section" | grep -q "Fashion-MNIST" && echo "$section" | grep -q "(suite/fmnist_acc_time.png)"; then
  echo "ok   README section written"
else
  echo "FAIL README section not written"
  failures=$((failures + 1))
fi
if cmp -s "$src/bench/results/README.md" "$readme"; then
  echo "FAIL the README copy is unchanged"
  failures=$((failures + 1))
fi
exit $((failures > 0))
