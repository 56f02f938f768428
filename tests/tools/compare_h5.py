#!/usr/bin/env python3
"""Compare datasets of two HDF5 files.

usage: compare_h5.py A.h5 B.h5 TOL DATASET [DATASET ...]

TOL 0 asks for bit-identical datasets: the same type, the same shape and the same bytes (so
-0.0 and 0.0 differ, and so do two NaNs with different payloads). TOL > 0 asks for
max |a - b| / max |b| <= TOL over the entries (the maximum of |b| over its finite entries;
an infinity must be the same infinity in both files).

NaN is a value only in the history columns that record a missing value: a step without a
test evaluation (/history/test_loss, /history/test_acc), or with --val-batch without a full
validation loss (/history/val_loss_full), a regression problem's accuracy (/history/val_acc),
a work counter lost with a checkpoint of format 1 (/history/samples), clocks lost with one of
format 4 or older (/history/solver_time, /history/eval_time).
There the two files must have NaN in the same entries, and not in every entry (an all-NaN
column compares nothing). NaN in any other dataset is an error: it is not data a run may
produce, and it would otherwise pass as "equal".

Exit status: 0 all datasets agree, 1 some dataset differs (same shape and type, other
values), 2 the comparison could not be made or the data is invalid (usage, a missing file
or dataset, different shapes or types, NaN where no value may be missing, an all-NaN column,
any other error).
"""
import sys
import traceback

SAME, DIFFERS, ERROR = 0, 1, 2

# Datasets that may hold NaN for "no value" (see above).
MAY_BE_MISSING = {"/history/test_loss", "/history/test_acc", "/history/val_acc",
                  "/history/samples", "/history/val_loss_full", "/history/solver_time",
                  "/history/eval_time"}


class Invalid(Exception):
    """The comparison cannot be made, or the data is invalid: exit status 2."""


def read(f, path, name):
    import h5py
    import numpy as np

    obj = f.get(name)
    if obj is None:
        raise Invalid(f"{name}: no such dataset in {path}")
    if not isinstance(obj, h5py.Dataset):
        raise Invalid(f"{name}: not a dataset in {path}")
    a = np.asarray(obj[()])
    if a.dtype.kind not in "biuf":
        raise Invalid(f"{name}: {path} holds {a.dtype}, not numbers")
    return a


def nan_mask(name, a, b):
    """The entries that are NaN in both files; raises Invalid where NaN may not be."""
    import numpy as np

    na = np.isnan(a) if a.dtype.kind == "f" else np.zeros(a.shape, bool)
    nb = np.isnan(b) if b.dtype.kind == "f" else np.zeros(b.shape, bool)
    if not (na.any() or nb.any()):
        return na
    if name not in MAY_BE_MISSING:
        raise Invalid(f"{name}: NaN in {int(na.sum())} entries of A and {int(nb.sum())} of B, "
                      "and this dataset records no missing values")
    if not np.array_equal(na, nb):
        first = int(np.flatnonzero(na.ravel() != nb.ravel())[0])
        raise Invalid(f"{name}: NaN in different entries (first at flat index {first}: "
                      f"{a.ravel()[first]!r} vs {b.ravel()[first]!r})")
    if na.all():
        raise Invalid(f"{name}: all {na.size} entries are NaN in both files: nothing to compare")
    return na


def compare(name, a, b, tol):
    """Prints one line for the dataset; returns its relative difference (0 when identical,
    inf when bit-identity is asked for and the bytes differ)."""
    import numpy as np

    if a.shape != b.shape:
        raise Invalid(f"{name}: shapes differ {a.shape} vs {b.shape}")
    missing = nan_mask(name, a, b)
    nmiss = int(missing.sum())
    note = f" ({nmiss} missing entries, NaN in both)" if nmiss else ""
    if tol == 0:
        if a.dtype != b.dtype:
            raise Invalid(f"{name}: types differ ({a.dtype} vs {b.dtype}), cannot be bit-identical")
        if a.tobytes() == b.tobytes():
            print(f"{name}: bit-identical, {a.size} entries{note}")
            return 0.0
        ab = np.frombuffer(a.tobytes(), np.uint8).reshape(a.size, a.dtype.itemsize)
        bb = np.frombuffer(b.tobytes(), np.uint8).reshape(b.size, b.dtype.itemsize)
        bad = np.flatnonzero((ab != bb).any(axis=1))
        i = int(bad[0])
        print(f"{name}: {bad.size} of {a.size} entries differ in their bits (first at flat index "
              f"{i}: {a.ravel()[i]!r} vs {b.ravel()[i]!r})")
        return float("inf")
    a = a.astype(float).ravel()
    b = b.astype(float).ravel()
    keep = ~missing.ravel()
    a, b = a[keep], b[keep]
    fa, fb = np.isfinite(a), np.isfinite(b)
    if not np.array_equal(fa, fb) or not np.array_equal(a[~fa], b[~fb]):
        print(f"{name}: infinite entries differ")
        return float("inf")
    a, b = a[fa], b[fb]
    if a.size == 0:
        print(f"{name}: no entries{note}")
        return 0.0
    scale = max(float(np.max(np.abs(b))), 1e-300)
    err = float(np.max(np.abs(a - b))) / scale
    print(f"{name}: relative difference {err:.3e}{note}")
    return err


def main(argv):
    if len(argv) < 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return ERROR
    a_path, b_path = argv[1], argv[2]
    try:
        tol = float(argv[3])
    except ValueError:
        print(f"TOL {argv[3]!r} is not a number", file=sys.stderr)
        return ERROR
    if not tol >= 0:
        print(f"TOL {argv[3]!r} must be >= 0", file=sys.stderr)
        return ERROR
    import h5py

    worst = 0.0
    with h5py.File(a_path, "r") as fa, h5py.File(b_path, "r") as fb:
        for name in argv[4:]:
            worst = max(worst, compare(name, read(fa, a_path, name), read(fb, b_path, name), tol))
    if not worst <= tol:
        what = "not bit-identical" if tol == 0 else f"{worst:.3e} > {tol:.1e}"
        print(f"FAILED: {what}")
        return DIFFERS
    print("ok: bit-identical" if tol == 0 else f"ok: all within {tol:.1e}")
    return SAME


if __name__ == "__main__":
    try:
        status = main(sys.argv)
    except Invalid as e:
        print(f"ERROR: {e}")
        status = ERROR
    except BaseException:  # a traceback (an import, an unreadable file) is an error, not a difference
        traceback.print_exc()
        status = ERROR
    sys.exit(status)
