#!/usr/bin/env bash
# NHGD against the exact hypergradient on a well-specified ridge problem: the relative gap
# against N with its bias and sampling bound (derivation at the top of
# tests/estimators/nhgd/test_ridge_fisher.c). usage: bench/ridge_fisher_bound.sh
source "$(dirname "$0")/common.sh"
out=$results/ridge_fisher_bound.md
cmake --build "$build" --target test_ridge_fisher >/dev/null
table=$(cd "$work" && "$build/tests/test_ridge_fisher" --table 2>/dev/null | grep '^|')
{
  echo "# NHGD hypergradient error against N on a well-specified ridge problem"
  echo
  machine_record
  echo
  echo "Command: \`bench/ridge_fisher_bound.sh\`. Synthetic ridge data (4,000 train rows, 8"
  echo "features, noise sigma = 0.5, the model's sigma = 0.5), v = -2 in every entry, damping 0,"
  echo "global batch B = 64 and T = N / B inner steps in the last of several warm-started outer"
  echo "steps with the outer step size 0. Relative gap = ||h_nhgd - h_exact|| / ||h_exact||; the"
  echo "bound is the bias at the iterates plus three standard deviations of the sampling term;"
  echo "'bias at theta*' is the same bias with the Fisher taken at the optimum. u check: the"
  echo "engine's u against M^{-1} g built from an independent replay of the trajectory."
  echo
  echo "$table"
} >"$out"
cat "$out"
