"""One run of bench/python_overhead.sh under mpirun (rank 0 prints one JSON line).

usage: python_overhead.py main DATA CONFIG OUTPUT
       python_overhead.py step DATA CONFIG PROBLEM OUTER_STEPS
  main: the main job of CONFIG from Python (what `nhgd run --config CONFIG --output OUTPUT`
        does), output written like the program's.
  step: OUTER_STEPS outer steps of PROBLEM, test evaluation off: logreg or numpy-logreg (the
        problem of examples/python/numpy_logreg.py) with cg; mlp-hyperclean or torch-mlp (a
        torch.nn MLP of the same widths, nhgd.torch.TorchProblem) with CONFIG's estimator and
        cross rows.
        Prints the seconds per outer step after the first (the first holds one-off set-up) and
        each timing stage's mean seconds per outer step (the slowest rank's).
"""
import json
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "examples", "python"))
import nhgd  # noqa: E402
from mpi4py import MPI  # noqa: E402

HIDDEN = 256  # the widths of bench/mlp.sh


def step_options(problem):
    """The options of a per-step run beyond the configuration's."""
    if problem in ("logreg", "numpy-logreg"):
        return dict(problem="logreg", estimator="cg", hvp_steps=10, cross_rows="all",
                    outer_opt="adam", outer_lr=0.1)
    # The configuration's sampled cross term (the main job's trajectory) for both.
    return dict(problem="mlp-hyperclean", hidden=str(HIDDEN))


def make_problem(name, data):
    if name == "numpy-logreg":
        from numpy_logreg import LogReg
        return LogReg(data)
    if name == "torch-mlp":
        import torch
        import nhgd.torch
        torch.set_num_threads(1)  # one rank per core
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(data.features, HIDDEN), torch.nn.Tanh(),
                                    torch.nn.Linear(HIDDEN, data.n_classes))
        return nhgd.torch.TorchProblem(model, data=data, clean_reg=1e-3)
    return name


def main():
    mode, data_path, config = sys.argv[1:4]
    data = nhgd.load(data_path)
    options = nhgd.Options.from_file(config)
    if mode == "main":
        result = nhgd.solve(data, options=options, output=sys.argv[4], log_level=1)
        record = {"solver_time": float(result.history["solver_time"][-1])}
    else:
        name, steps = sys.argv[4], int(sys.argv[5])
        options.update(**step_options(name), outer_steps=steps, eval_every=0)
        result = nhgd.solve(data, problem=make_problem(name, data), options=options, log_level=1)
        wall = result.history["wall_time"]
        record = {"problem": name, "per_step": float((wall[-1] - wall[0]) / (len(wall) - 1)),
                  "stages": {k: v[2] / steps for k, v in result.timings.items()}}
    if MPI.COMM_WORLD.rank == 0:
        print("RESULT " + json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
