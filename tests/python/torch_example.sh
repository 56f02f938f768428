#!/usr/bin/env bash
# The PyTorch example (examples/python/torch_hyperclean.py) runs as its usage line says, in a
# folder of its own (it makes its input file there), and ends with a test accuracy above that of
# a blind guess. Exits 77 (skipped) without PyTorch.
# usage: torch_example.sh MPIRUN NP PYTHON
set -u
mpirun=$1 np=$2 python=$3
src=$(cd "$(dirname "$0")/../.." && pwd)
"$python" -c "import torch" 2>/dev/null || { echo "skipped: PyTorch is not installed"; exit 77; }
dir=python_torch_example_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
export OPENBLAS_NUM_THREADS=1
timeout 300 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$python" \
  "$src/examples/python/torch_hyperclean.py" >out.txt 2>&1 ||
  { echo "FAIL the example"; tail -20 out.txt; exit 1; }
cat out.txt
acc=$(sed -n 's/^final test accuracy \([0-9.]*\) .*/\1/p' out.txt)
[ -n "$acc" ] || { echo "FAIL no final line"; exit 1; }
"$python" -c "import sys; sys.exit(0 if float('$acc') > 0.5 else 1)" ||
  { echo "FAIL test accuracy $acc"; exit 1; }
echo "ok   the torch example ($np ranks): test accuracy $acc"
