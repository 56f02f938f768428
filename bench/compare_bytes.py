#!/usr/bin/env python3
"""Are two nhgd HDF5 files (outputs or checkpoints) the same, byte for byte, in every dataset?

Clock fields are left out: compound or column fields whose name holds "time", any dataset
under a path holding "timing" or named for a clock (wall_time, solver_time, eval_time), and in
a checkpoint's packed /history (rows of nhgd_history columns) the clock columns. Prints one
line per file; exit 1 when any dataset differs or is missing.

usage: bench/compare_bytes.py A.h5 B.h5
"""
import sys

import h5py
import numpy as np

# Columns of a checkpoint's packed history, in the order of src/io/history.c (checkpoint
# format 5; older formats hold the first 9, format 1 the first 8).
HISTORY_COLUMNS = ["step", "val_loss", "val_acc", "test_loss", "test_acc", "inner_loss",
                   "hypergrad_norm", "wall_time", "samples", "val_rows", "val_loss_full",
                   "solver_time", "eval_time"]
CLOCKS = ("wall_time", "solver_time", "eval_time")


def main():
    a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
    bad, seen = [], [0]

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset) or "timing" in name or name.endswith(CLOCKS):
            return
        if name not in b:
            bad.append(name + " (missing)")
            return
        x, y = obj[()], b[name][()]
        seen[0] += 1
        if getattr(x, "dtype", None) is not None and x.dtype.names:
            for f in x.dtype.names:
                if "time" not in f and x[f].tobytes() != y[f].tobytes():
                    bad.append(f"{name}.{f}")
            return
        x, y = np.asarray(x), np.asarray(y)
        steps = int(a.attrs.get("outer_step", 0))
        if name == "history" and x.ndim == 1 and steps > 0 and x.size % steps == 0:
            width = x.size // steps
            keep = [i for i, c in enumerate(HISTORY_COLUMNS[:width]) if c not in CLOCKS]
            x = x.reshape(steps, width)[:, keep]
            y = y.reshape(steps, width)[:, keep] if y.shape == obj.shape else y
        if x.shape != y.shape or x.tobytes() != y.tobytes():
            bad.append(name)

    a.visititems(visit)
    print(f"{sys.argv[1]}: {seen[0]} datasets, " + (f"differ: {', '.join(bad)}" if bad else "identical"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
