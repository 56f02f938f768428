"""Hyper-cleaning of Fashion-MNIST with a small PyTorch network: a 784-32-10 tanh MLP trained on
training rows with half the labels redrawn, one weight sigmoid(v_i) per row tuned on clean
validation rows by natural hypergradient descent (the kfac route, from the network's Kronecker
factors; the cross term from the rows inner SGD drew, as the main job takes it), the derivatives
by autograd (nhgd.torch.TorchProblem).

usage (from the repository root, after the build; needs PyTorch, Debian: python3-torch):
    mpirun -n 2 python3 examples/python/torch_hyperclean.py [OUTER_STEPS]

Makes the input run/fashion_mnist_torch.h5 (4,000 training and 1,000 validation rows, under
the current folder) when it is missing and prints the test accuracy as it goes.
"""
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
try:
    import nhgd
except ImportError:  # not installed: the package of the build tree
    sys.path.insert(0, os.path.join(root, "build", "python"))
    import nhgd
import nhgd.torch
import torch
from mpi4py import MPI

torch.set_num_threads(1)  # one rank per core
comm = MPI.COMM_WORLD
data_path = "run/fashion_mnist_torch.h5"
if comm.rank == 0:
    os.makedirs("run", exist_ok=True)
if not os.path.exists(data_path):  # every rank sees the same file system here
    nhgd.data_fashion_mnist(data_path, n_train=4000, n_val=1000)
data = nhgd.load(data_path)

torch.manual_seed(0)  # the same initial network on every rank
model = torch.nn.Sequential(torch.nn.Linear(data.features, 32), torch.nn.Tanh(),
                            torch.nn.Linear(32, data.n_classes))
problem = nhgd.torch.TorchProblem(model, data=data, clean_reg=1e-3)


def show(step):
    if comm.rank == 0 and step["step"] % 3 == 0:
        print(f"outer step {step['step']}: validation loss {step['val_loss']:.4f}, test accuracy "
              f"{step['test_acc']:.4f}", flush=True)


steps = int(sys.argv[1]) if len(sys.argv) > 1 else 12
result = nhgd.solve(data, problem=problem, estimator="nhgd", outer_steps=steps, inner_steps=20,
                    batch=128, inner_lr=0.1, efim_damping=0.01, efim_samples=64,
                    cross_rows="trajectory", progress=show, log_level=1)
problem.load(result.theta)  # the model now holds the trained weights
if comm.rank == 0:
    print(f"final test accuracy {result.test_accuracy:.4f} after {result.steps} outer steps; "
          f"solver time {result.history['solver_time'][-1]:.2f} s")
