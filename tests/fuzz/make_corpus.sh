#!/usr/bin/env bash
# Write the seed corpora of the HDF5 fuzz harnesses with the program itself: small data files
# (h5data) and checkpoints of the run in checkpoint.cfg (checkpoint), each also truncated and
# with bytes overwritten. The data must stay what fuzz_checkpoint.c makes (the checkpoints
# record its digest). usage: tests/fuzz/make_corpus.sh NHGD
set -euo pipefail
nhgd=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
# damage FILE OUT: OUT_trunc (the first third) and OUT_flip (64 bytes in the middle zeroed).
damage() {
  local size
  size=$(stat -c %s "$1")
  head -c $((size / 3)) "$1" >"$2_trunc.h5"
  cp "$1" "$2_flip.h5"
  dd if=/dev/zero of="$2_flip.h5" bs=1 seek=$((size / 2)) count=64 conv=notrunc status=none
}
# Descriptions of files for fuzz_h5data's default mode (see the harness for the layout): a
# regression and a classification file with every split, and one with a label out of range.
out=$here/corpus/h5data
rm -rf "$out" && mkdir -p "$out"
python3 - "$out" <<'PY'
import struct, sys
def ds(rows, cols, code, values, rank=2):  # flags, rank, cols, depth, type, values
    return bytes([0, rank - 1, cols - 1, 0, code]) + values
def split(rows, cols, label, cls):
    x = b"".join(struct.pack("<d", 0.25 * (i % 7) - 0.5) for i in range(rows * cols))
    if cls:
        y = b"".join(struct.pack("<i", (i + label) % 3) for i in range(rows))
        return bytes([0, rows]) + ds(rows, cols, 0, x) + ds(rows, 1, 2, y, 1)
    y = b"".join(struct.pack("<d", 0.1 * i) for i in range(rows))
    return bytes([0, rows]) + ds(rows, cols, 0, x) + ds(rows, 1, 0, y, 1)
cases = {
    "regression.bin": bytes([0]) + split(8, 3, 0, 0) + split(4, 3, 0, 0) + split(4, 3, 0, 0),
    "classes.bin": bytes([3, 4]) + split(8, 3, 0, 1) + split(4, 3, 1, 1) + bytes([1]),
    "bad_label.bin": bytes([3, 3]) + split(6, 2, 0, 1) + split(3, 2, 2, 1) + bytes([1]),
}
for name, b in cases.items():
    open(f"{sys.argv[1]}/{name}", "wb").write(b)
PY
# Files themselves for NHGD_FUZZ_RAW=1 (bench/fuzz.sh), and inputs it found that the reader
# now refuses (regression tests: fuzz_h5data_raw).
out=$here/corpus/h5data_raw
mkdir -p "$out"
"$nhgd" data synth --kind ridge --features 3 --n-train 8 --n-val 4 --n-test 4 --output "$out/ridge.h5" >/dev/null
"$nhgd" data synth --kind logistic --features 3 --classes 3 --n-train 8 --n-val 4 --n-test 0 \
  --output "$out/logistic.h5" >/dev/null
printf '1 1:0.5 3:1\n-1 2:0.25\n1 1:1 2:2 3:3\n-1 3:0.5\n' >s.txt
"$nhgd" data import-libsvm --input s.txt --output "$out/libsvm.h5" >/dev/null
damage "$out/ridge.h5" "$out/ridge"
damage "$out/logistic.h5" "$out/logistic"
rm -f "$out"/*.h5.tmp
out=$here/corpus/checkpoint
rm -rf "$out" && mkdir -p "$out"
"$nhgd" data synth --kind ridge --features 6 --n-train 40 --n-val 20 --n-test 10 --seed 0 \
  --output d.h5 >/dev/null
mpirun -n 1 "$nhgd" run --config "$here/checkpoint.cfg" --data d.h5 --checkpoint-dir ck \
  --output o.h5 >/dev/null
# Inside the first inner loop (an estimator matrix), at a boundary after the rollbacks, the end.
cp ck/ckpt-000000000002.h5 "$out/inner.h5"
cp ck/ckpt-000000000008.h5 "$out/boundary.h5"
cp ck/ckpt-000000000016.h5 "$out/end.h5"
damage "$out/inner.h5" "$out/inner"
ls -l "$here/corpus/h5data" "$here/corpus/checkpoint"
