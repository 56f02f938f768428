#!/usr/bin/env bash
# `cmake --install` into a fresh prefix gives a package that imports from there alone (the
# module finds libnhgd relative to itself) and runs: options, an input file, a short solve.
# usage: install.sh BUILD_DIR PYTHON
set -u
build=$1 python=$2
prefix=$PWD/python_install
rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" >install.log 2>&1 || { cat install.log; exit 1; }
init=$(find "$prefix" -path '*-packages/nhgd/__init__.py' | head -1)
[ -n "$init" ] || { echo "FAIL no nhgd/__init__.py under $prefix"; exit 1; }
site=$(dirname "$(dirname "$init")")
cd "$prefix" || exit 1
env -u PYTHONPATH PYTHONPATH="$site" "$python" - <<'PY' || { echo "FAIL the installed package"; exit 1; }
import nhgd
assert nhgd.__file__.startswith(__import__("os").getcwd() + "/"), nhgd.__file__
nhgd.data_fashion_mnist("d.h5", n_train=300, n_val=100)
r = nhgd.solve(nhgd.load("d.h5"), outer_steps=2, inner_steps=3, batch=16, log_level=0)
assert r.steps == 2 and r.theta.shape == (7840,)
print("ok   the installed package:", nhgd.__file__)
PY
