#!/usr/bin/env python3
"""Compare datasets of two HDF5 files: max |a-b| / max |b| must not exceed a tolerance.

usage: compare_h5.py A.h5 B.h5 TOL DATASET [DATASET ...]
"""
import sys

import h5py
import numpy as np


def main():
    a_path, b_path, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
    worst = 0.0
    with h5py.File(a_path, "r") as fa, h5py.File(b_path, "r") as fb:
        for name in sys.argv[4:]:
            a = np.asarray(fa[name], dtype=float)
            b = np.asarray(fb[name], dtype=float)
            if a.shape != b.shape:
                print(f"{name}: shapes differ {a.shape} vs {b.shape}")
                return 1
            mask = ~(np.isnan(a) & np.isnan(b))
            scale = max(np.max(np.abs(b[mask])) if mask.any() else 0.0, 1e-300)
            err = np.max(np.abs(a[mask] - b[mask])) / scale if mask.any() else 0.0
            print(f"{name}: relative difference {err:.3e}")
            worst = max(worst, err)
    if not worst <= tol:
        print(f"FAILED: {worst:.3e} > {tol:.1e}")
        return 1
    print(f"ok: all within {tol:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
