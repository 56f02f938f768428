"""The main job (jobs/hyperclean_fmnist.cfg: hyper-cleaning of Fashion-MNIST with NHGD) from
Python, as `scripts/setup.sh demo` runs it with the program.

usage (from the repository root, after the build):
    mpirun -n 2 python3 examples/python/main_job.py [OUTER_STEPS]

Makes the input run/fashion_mnist.h5 (under the current folder) when it is missing, writes
run/hyperclean_fmnist_py.h5 (the file `nhgd run --output` writes) and prints the test
accuracy per outer step.
"""
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
try:
    import nhgd
except ImportError:  # not installed: the package of the build tree
    sys.path.insert(0, os.path.join(root, "build", "python"))
    import nhgd
from mpi4py import MPI

comm = MPI.COMM_WORLD
data_path = "run/fashion_mnist.h5"
if comm.rank == 0:
    os.makedirs("run", exist_ok=True)
if not os.path.exists(data_path):  # every rank sees the same file system here
    nhgd.data_fashion_mnist(data_path)

options = nhgd.Options.from_file(os.path.join(root, "jobs", "hyperclean_fmnist.cfg"))
if len(sys.argv) > 1:
    options["outer_steps"] = int(sys.argv[1])


def show(step):
    if comm.rank == 0 and step["test_acc"] == step["test_acc"]:  # not NaN: evaluated
        print(f"outer step {step['step']}: test accuracy {step['test_acc']:.4f}", flush=True)


data = nhgd.load(data_path)
result = nhgd.solve(data, options=options, progress=show, output="run/hyperclean_fmnist_py.h5",
                    log_level=1)
if comm.rank == 0:
    print(f"final test accuracy {result.test_accuracy:.4f} after {result.steps} outer steps; "
          f"solver time {result.history['solver_time'][-1]:.2f} s; output {result.output}")
