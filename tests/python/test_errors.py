"""Errors through the Python package: bad option names, types and values, a bad data path, a
bad communicator and a progress callback that raises, including failures on one rank only,
raise nhgd.Error with the library's message and the same status on every rank, and nothing
hangs (the test runs under a timeout). Run under mpirun at any rank count; exit 0 when every
case passes."""
import os

from mpi4py import MPI

import nhgd
from checks import Checks

comm = MPI.COMM_WORLD
rank = comm.rank
checks = Checks("errors")


def expect_error(label, fn, status, text):
    checks.expect_error(label, fn, text, status)


ARG, IO, DATA = 1, 3, 4

# Options alone (not collective: the same arguments fail alike on every rank).
expect_error("unknown name", lambda: nhgd.Options(outer_stepz=3), ARG,
             "unknown option --outer-stepz (keyword outer_stepz)")
expect_error("text for an integer", lambda: nhgd.Options(outer_steps="many"), ARG,
             "option --outer-steps (keyword outer_steps): 'many' is not an integer")
expect_error("a float for an integer", lambda: nhgd.Options(outer_steps=1.5), ARG,
             "'1.5' is not an integer")
expect_error("a list", lambda: nhgd.Options(outer_steps=[3]), ARG,
             "option --outer-steps: a value of type list is not an option value")
expect_error("out of range", lambda: nhgd.Options(inner_lr=-1.0), ARG, "outside the range")
expect_error("not a choice", lambda: nhgd.Options(estimator="magic"), ARG, "is not one of")
expect_error("missing config file", lambda: nhgd.Options.from_file("no_such.cfg"), IO,
             "no_such.cfg")

# Data.
os.chdir(checks.work)
path = "small.h5"
nhgd.data_fashion_mnist(path, n_train=400, n_val=100)
expect_error("missing data file", lambda: nhgd.load("no_such.h5"), IO, "no_such.h5")
if rank == 0:
    with open("not_hdf5.h5", "w") as f:
        f.write("not an HDF5 file\n")
comm.Barrier()
expect_error("not an HDF5 file", lambda: nhgd.load("not_hdf5.h5"), DATA,
             "not_hdf5.h5: not an HDF5 file")
expect_error("not a communicator", lambda: nhgd.load(path, comm=42), ARG,
             "an mpi4py communicator is needed")
# A data path that differs between ranks is refused on every rank (not a hang).
if comm.size > 1:
    expect_error("a path that differs on the last rank",
                 lambda: nhgd.load(path if rank < comm.size - 1 else "no_such.h5"), ARG,
                 "every rank must give the same")

data = nhgd.load(path)
short = dict(outer_steps=2, inner_steps=3, batch=16, log_level=0)

# Options of a run, bad on one rank only: every rank raises the library's message.
expect_error("an option bad on the last rank",
             lambda: nhgd.solve(data, **short, outer_lr=-1.0 if rank == comm.size - 1 else 1.0),
             ARG, "option --outer-lr (keyword outer_lr)")
expect_error("an unknown option in solve", lambda: nhgd.solve(data, **short, outer_stepz=1), ARG,
             "unknown option --outer-stepz")
expect_error("an unknown problem", lambda: nhgd.solve(data, problem="magic", **short), ARG,
             "is not one of")
expect_error("a problem that does not fit the data",
             lambda: nhgd.solve(data, problem="ridge", **short), ARG, "")
expect_error("a folder as output", lambda: nhgd.solve(data, output="..", **short), IO,
             "output ..: is a folder")
expect_error("the input as output", lambda: nhgd.solve(data, output=path, **short), ARG,
             "small.h5")


def raise_on_rank0(step):
    if rank == 0 and step["step"] == 0:
        raise ValueError("boom")


expect_error("a progress callback that raises on rank 0",
             lambda: nhgd.solve(data, progress=raise_on_rank0, **short), ARG,
             "the progress callback raised ValueError: boom (at outer step 0")

# After all that the package still works.
result = nhgd.solve(data, **short)
checks.report("a good run after the errors", result.steps == 2 and result.theta.shape == (7840,))
data.close()
checks.exit()
