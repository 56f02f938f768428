"""Helpers of the Python tests: a fresh work folder per test and rank count, pass/fail lines
agreed over the ranks (printed by rank 0), and the check that a call fails alike on every
rank."""
import os
import shutil
import sys

import numpy as np
from mpi4py import MPI

import nhgd

comm = MPI.COMM_WORLD


class Checks:
    """The verdicts of one test script run under mpirun."""

    def __init__(self, name):
        self.failures = 0
        self.work = f"python_{name}_np{comm.size}"  # the rank counts may run at the same time
        if comm.rank == 0:
            shutil.rmtree(self.work, ignore_errors=True)
            os.makedirs(self.work)
        comm.Barrier()

    def report(self, label, ok, detail=""):
        """One line: ok when ok holds on every rank."""
        ok = comm.allreduce(int(not ok)) == 0
        self.failures += not ok
        if comm.rank == 0:
            print(f"{'ok  ' if ok else 'FAIL'} {label}{': ' + detail if detail else ''}",
                  flush=True)

    def expect_error(self, label, fn, text, status=None):
        """fn raises nhgd.Error whose message holds text (and whose status is status, when
        given), with the same status and message on every rank."""
        try:
            fn()
            got = (None, "no error")
        except nhgd.Error as e:
            got = (e.status, e.message)
        everyone = comm.allgather(got)
        ok = (got[0] is not None and (status is None or got[0] == status) and text in got[1]
              and all(g == everyone[0] for g in everyone))
        self.report(label, ok, got[1])
        if not ok and comm.rank == 0:
            for r, g in enumerate(everyone):
                print(f"    rank {r}: status {g[0]}: {g[1]}", flush=True)

    def exit(self):
        """Exit 1 when some check failed on some rank, else 0."""
        sys.exit(1 if comm.allreduce(self.failures) else 0)


def softmax_data(seed, m, C, sizes):
    """Collective: classification rows whose labels follow a linear softmax model with Gumbel
    noise, made on rank 0 and scattered by nhgd.Data.from_arrays (train, val and test split
    of sizes rows)."""
    if comm.rank != 0:
        return nhgd.Data.from_arrays(None, None, None)
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(m, C))

    def split(n):
        X = rng.normal(size=(n, m))
        return X, (X @ truth + rng.gumbel(size=(n, C))).argmax(axis=1)

    return nhgd.Data.from_arrays(*(split(n) for n in sizes), n_classes=C)
