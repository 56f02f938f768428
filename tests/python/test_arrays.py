"""Data.from_arrays: the rows of an input file given as arrays (each rank its own block, or
rank 0 all of them) solve bit for bit as the file loaded by nhgd.load does; malformed arrays
raise nhgd.Error with the same message on every rank. Run under mpirun at any rank count."""
import os

import numpy as np
from mpi4py import MPI

import nhgd
from checks import Checks

comm = MPI.COMM_WORLD
rank = comm.rank
checks = Checks("arrays")
report, expect_error = checks.report, checks.expect_error
path = os.path.join(checks.work, "small.h5")
nhgd.data_fashion_mnist(path, n_train=500, n_val=150)


run = dict(outer_steps=3, inner_steps=5, batch=16, log_level=0)
loaded = nhgd.load(path)
reference = nhgd.solve(loaded, **run)
ref_v = reference.gather_v()


def same_as_reference(data, label):
    r = nhgd.solve(data, **run)
    ok = (r.theta.tobytes() == reference.theta.tobytes()
          and r.gather_v().tobytes() == ref_v.tobytes()
          and r.history["val_loss"].tobytes() == reference.history["val_loss"].tobytes())
    report(label, ok, f"test accuracy {r.test_accuracy:.4f}")


splits = [loaded.train, loaded.val, loaded.test]
own = nhgd.Data.from_arrays(*[(X.copy(), y.copy()) for X, y in splits], root=None)
same_as_reference(own, "each rank its own rows")
whole = [tuple(np.concatenate(p) for p in zip(*comm.allgather(s))) for s in splits]
if rank == 0:
    scattered = nhgd.Data.from_arrays(*whole, n_classes=10)
else:
    scattered = nhgd.Data.from_arrays(None, None, None)
same_as_reference(scattered, "rank 0 all rows, scattered")
own.close()
scattered.close()


X, y = whole[0]
val = whole[1]
bad = X.copy()
bad[3, 5] = np.nan
expect_error("NaN on rank 0", lambda: nhgd.Data.from_arrays(
    (bad, y) if rank == 0 else None, val if rank == 0 else None), "must be finite")
expect_error("a label out of range", lambda: nhgd.Data.from_arrays(
    (X, y) if rank == 0 else None, val if rank == 0 else None, n_classes=3), "label 9 is outside")
if comm.size > 1:  # one rank: any rows are its block
    expect_error("rows that are not the partition", lambda: nhgd.Data.from_arrays(
        (X[rank::comm.size][:1 + rank], y[rank::comm.size][:1 + rank]),
        (val[0][:5], val[1][:5]), root=None), "the partition gives it")
expect_error("a missing split", lambda: nhgd.Data.from_arrays(
    (X, y) if rank == 0 else None, None), "the val split is required")
loaded.close()
checks.exit()
