#!/usr/bin/env bash
# `cmake --install` gives another project a usable libnhgd: the example user-defined problem
# builds and runs against the installed library, once through the CMake package and once
# through pkg-config. usage: consumer.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1 src=$2
work=$(pwd)/install_consumer
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cmake -S "$src/tests/install" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DEXAMPLE_SOURCE="$src/examples/custom_problem.c" >/dev/null
cmake --build "$work/cmake" >/dev/null
"$work/cmake/custom_problem"
pcdir=$(dirname "$(find "$work/prefix" -name nhgd.pc | head -1)")
PKG_CONFIG_PATH=$pcdir mpicc -std=c11 "$src/examples/custom_problem.c" -o "$work/pc_consumer" \
  $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs nhgd) -lm
LD_LIBRARY_PATH="$(dirname "$pcdir")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$work/pc_consumer"
echo "installed library usable through CMake and pkg-config"
