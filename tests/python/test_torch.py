"""PyTorch problems (nhgd.torch.TorchProblem): a torch MLP equals the built-in mlp-hyperclean of
the same widths at the same weights and data, callback by callback to 1e-8 (inner gradient,
Hessian-vector product, J^T u, regulariser, validation loss and gradient, the Kronecker factors
of its layers and per-sample gradients; the sampled cross term, cross_keep and cross_apply
through the C glue, to 1e-10), and so do the hypergradients of the neumann and nhgd (kfac
route) estimators and a few outer steps of nhgd, with cross rows all, trajectory and end;
nhgd.check_problem passes it and a model that is not all nn.Linear (which refuses cross rows
trajectory); a torch callback that raises on one rank fails the run with one message on every
rank, and so do Kronecker factors that raise and a sampled cross term that raises or returns
the wrong shape; every callback takes an empty row list. Run under mpirun at any rank count;
exits 77 (skipped) without torch."""
import os
import sys

import numpy as np
from mpi4py import MPI

try:
    import torch
except ImportError:
    if MPI.COMM_WORLD.rank == 0:
        print("skipped: PyTorch is not installed (Debian: python3-torch)", flush=True)
    sys.exit(77)

import nhgd
import nhgd.torch
from nhgd._nhgd_ffi import ffi, lib
from checks import Checks, softmax_data

comm = MPI.COMM_WORLD
rank = comm.rank
checks = Checks("torch")
report, expect_error = checks.report, checks.expect_error
torch.set_num_threads(1)

m, C, hidden = 10, 4, (7, 5)
data = softmax_data(5, m, C, (120, 60, 40))
rng = np.random.default_rng(6 + rank)  # per-rank draws below say so; replicated ones use rng0
rng0 = np.random.default_rng(7)


def mlp():
    widths = (m,) + hidden
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(widths[-1], C))


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def worst(err):
    return comm.allreduce(err, op=MPI.MAX)


net = dict(hidden=",".join(map(str, hidden)), activation="tanh", clean_reg=1e-3)
opts = nhgd.Options(problem="mlp-hyperclean", **net)
box = ffi.new("nhgd_problem **")
assert lib.nhgd_problem_create_from_options(opts._handle, data._handle, box) == 0
bp = box[0]
mine = nhgd.torch.TorchProblem(mlp(), data=data, clean_reg=1e-3)
n_local = data.rows("train")[2]
report("the layout is the built-in's", mine.d == bp.d and mine.p == bp.p and
       mine.layers == [(bp.layer_in[k], bp.layer_out[k]) for k in range(bp.n_layers)],
       f"d {mine.d} and {bp.d}, layers {mine.layers}")

# The same weights: the built-in's initialisation moved by a replicated random step.
theta0 = np.zeros(bp.d)
v0 = np.zeros(n_local)
lib.nhgd_error_clear()
assert bp.ops.init(bp, ffi.from_buffer("double[]", theta0), ffi.from_buffer("double[]", v0)) == 0
theta = theta0 + 0.3 * rng0.standard_normal(bp.d)
v = rng.standard_normal(n_local)
rows = rng.integers(0, n_local, size=2 * n_local).astype(np.intc)  # repeats, as SGD draws
c_theta, c_v = ffi.from_buffer("double[]", theta), ffi.from_buffer("double[]", v)
c_rows = ffi.from_buffer("int[]", rows)
nb = len(rows)

g, loss = np.zeros(bp.d), ffi.new("double *")
assert bp.ops.inner_grad(bp, c_theta, c_v, nb, c_rows, ffi.from_buffer("double[]", g), loss) == 0
tg, tloss = mine.inner_grad(theta, v, rows)
report("inner gradient and loss", worst(max(rel(tg, g), rel(tloss, loss[0]))) <= 1e-8,
       f"relative difference {worst(max(rel(tg, g), rel(tloss, loss[0]))):.1e}")

L = bp.n_layers
bufs_a = [np.zeros((nb, bp.layer_in[k])) for k in range(L)]
bufs_g = [np.zeros((nb, bp.layer_out[k])) for k in range(L)]
c = np.zeros(nb)
ptr_a = ffi.new("double *[]", [ffi.from_buffer("double[]", x) for x in bufs_a])
ptr_g = ffi.new("double *[]", [ffi.from_buffer("double[]", x) for x in bufs_g])
assert bp.ops.layer_factors(bp, c_theta, c_v, nb, c_rows, 0, ptr_a, ptr_g,
                            ffi.from_buffer("double[]", c)) == 0
for after in (True, False):  # after inner_grad: from its pass; otherwise a pass of their own
    sub = rows[::3]
    mine.inner_grad(theta, v, rows)
    a, gl, cw = mine.layer_factors(theta, v, sub, after)
    err = max([rel(a[k], bufs_a[k][::3]) for k in range(L)] +
              [rel(gl[k], bufs_g[k][::3]) for k in range(L)] + [rel(cw, c[::3])])
    report(f"Kronecker factors of the layers (after_grad {after})", worst(err) <= 1e-8,
           f"relative difference {worst(err):.1e}")
S = np.zeros((nb, bp.d))
assert bp.ops.sample_grads(bp, c_theta, c_v, nb, c_rows, ffi.from_buffer("double[]", S),
                           ffi.from_buffer("double[]", c)) == 0
tS, tc = mine.sample_grads(theta, v, rows)
report("per-sample gradients", worst(max(rel(tS, S), rel(tc, c))) <= 1e-8,
       f"relative difference {worst(max(rel(tS, S), rel(tc, c))):.1e}")

V = rng0.standard_normal(bp.d)
hv = np.zeros(bp.d)
assert bp.ops.hvp(bp, c_theta, c_v, nb, c_rows, ffi.from_buffer("double[]", V),
                  ffi.from_buffer("double[]", hv)) == 0
err = worst(rel(mine.hvp(theta, v, rows, V), hv))
report("Hessian-vector product (double backward)", err <= 1e-8, f"relative difference {err:.1e}")

u = rng0.standard_normal(bp.d)
jt = np.zeros(n_local)
assert bp.ops.cross(bp, c_theta, c_v, ffi.from_buffer("double[]", u),
                    ffi.from_buffer("double[]", jt)) == 0
err = worst(rel(mine.cross(theta, v, u), jt))
report("J^T u (differentiated in v)", err <= 1e-8 and np.abs(jt).max() > 0,
       f"relative difference {err:.1e}")

# The sampled cross term through the C glue of the torch problem: its records and their terms
# are the built-in's, after inner_grad (from its pass) and from a pass of their own.
handle = ffi.new_handle(mine)
rc, tbox = nhgd._problem.create(mine, data._handle, handle)
assert rc == 0
tp = tbox[0]
w = bp.cross_width
report("the sampled cross term's width is the built-in's", tp.cross_width == w,
       f"{tp.cross_width} and {w}")
scale = rng.uniform(0.5, 2.0, nb)
base = rng.standard_normal(n_local)  # cross_apply adds to what out holds
for after in (1, 0):
    Ks = []
    for q in (bp, tp):
        assert q.ops.inner_grad(q, c_theta, c_v, nb, c_rows, ffi.from_buffer("double[]", g),
                                loss) == 0
        Ks.append(np.zeros((nb, w)))
        assert q.ops.cross_keep(q, c_theta, c_v, nb, c_rows, after,
                                ffi.from_buffer("double[]", Ks[-1])) == 0
    outs = []
    for q, K in zip((bp, tp), Ks):
        outs.append(base.copy())
        assert q.ops.cross_apply(q, c_v, ffi.from_buffer("double[]", u), nb, c_rows,
                                 ffi.from_buffer("double[]", K), ffi.from_buffer("double[]", scale),
                                 ffi.from_buffer("double[]", outs[-1])) == 0
    err = worst(max(rel(Ks[1], Ks[0]), rel(outs[1] - base, outs[0] - base)))
    report(f"cross_keep and cross_apply (after_grad {after})",
           err <= 1e-10 and worst(np.abs(outs[0] - base).max()) > 0,
           f"relative difference {err:.1e}")
lib.nhgd_problem_destroy(tbox)

value, rg, hd = ffi.new("double *"), theta * 0.0, np.zeros(bp.d)
assert bp.ops.reg(bp, c_theta, c_v, value, ffi.from_buffer("double[]", rg),
                  ffi.from_buffer("double[]", hd)) == 0
tval, trg, thd = mine.reg(theta, v)
err = worst(max(rel(tval, value[0]), rel(trg, rg), rel(thd, hd)))
report("regulariser", err <= 1e-8, f"relative difference {err:.1e}")

ls, gv, hits = ffi.new("double *"), np.zeros(bp.d), ffi.new("int64_t *")
assert bp.ops.eval(bp, ffi.addressof(data._handle.val), c_theta, c_v, ls,
                   ffi.from_buffer("double[]", gv), hits) == 0
X, y = data.val
tls, tgv, thits = mine.eval(X, y, theta, v, True)
err = worst(max(rel(tls, ls[0]), rel(tgv, gv)))
report("validation loss, gradient and hits", err <= 1e-8 and thits == hits[0],
       f"relative difference {err:.1e}, hits {thits} and {hits[0]}")
nhgd_pb = box
lib.nhgd_problem_destroy(nhgd_pb)

errors = nhgd.check_problem(mine)
report("check_problem on the torch MLP", max(errors.values()) <= 1e-5,
       ", ".join(f"{k} {e:.1e}" for k, e in errors.items()))


class Scaled(torch.nn.Module):
    """A model with a parameter outside nn.Linear: theta is its parameters flattened."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(m, C, bias=False)
        self.scale = torch.nn.Parameter(torch.ones(C, dtype=torch.float64))

    def forward(self, x):
        return torch.tanh(self.lin(x)) * self.scale


torch.manual_seed(0)
other = nhgd.torch.TorchProblem(Scaled(), data=data)
errors = nhgd.check_problem(other)
report("check_problem on a model that is not all nn.Linear (no layer factors)",
       max(errors.values()) <= 1e-5 and other.layer_factors is None and other.d == m * C + C,
       ", ".join(f"{k} {e:.1e}" for k, e in errors.items()))

# The engine on both: the torch model starts at the built-in's initial weights (regularised
# more; neumann, since exact and cg refuse a network's indefinite Hessian).
net["clean_reg"] = 0.05
mine = nhgd.torch.TorchProblem(mlp(), data=data, clean_reg=net["clean_reg"])
mine.initial_theta = theta0
common = dict(inner_steps=15, batch=16, inner_lr=0.2, log_level=0, **net)
for est, extra in (("neumann", {"hvp_steps": 10, "neumann_eta": 0.1}),
                   ("nhgd", {"efim_route": "kfac", "efim_samples": 8})):
    builtin = nhgd.hypergradient(data, problem="mlp-hyperclean", estimator=est, **common, **extra)
    ours = nhgd.hypergradient(data, problem=mine, estimator=est, **common, **extra)
    ha = np.concatenate(comm.allgather(ours.hypergradient))
    hb = np.concatenate(comm.allgather(builtin.hypergradient))
    err = rel(ha, hb)
    report(f"hypergradient, {est}", err <= 1e-8 and np.abs(hb).max() > 0,
           f"relative difference {err:.1e}")
run = dict(estimator="nhgd", efim_route="kfac", outer_steps=3, outer_lr=1000.0, **common)
builtin = nhgd.solve(data, problem="mlp-hyperclean", **run)
ours = nhgd.solve(data, problem=mine, **run)
err = worst(max(rel(ours.theta, builtin.theta), rel(ours.v, builtin.v),
                rel(ours.history["val_loss"], builtin.history["val_loss"])))
report("3 outer steps of nhgd (kfac)", err <= 1e-8, f"relative difference {err:.1e}")
TIMES = ("wall_time", "solver_time", "eval_time")
for rows_from in ("trajectory", "end"):
    builtin = nhgd.solve(data, problem="mlp-hyperclean", cross_rows=rows_from, cross_samples=30,
                         **run)
    ours = nhgd.solve(data, problem=mine, cross_rows=rows_from, cross_samples=30, **run)
    err = worst(max([rel(ours.theta, builtin.theta), rel(ours.v, builtin.v)] +
                    [rel(ours.history[k], builtin.history[k]) for k in nhgd.HISTORY_COLUMNS
                     if k not in TIMES and np.abs(builtin.history[k]).max() > 0]))
    moved = worst(np.abs(builtin.v - ours.options["v_init"]).max()) > 0
    report(f"3 outer steps of nhgd (kfac), cross rows {rows_from}", err <= 1e-8 and moved,
           f"relative difference {err:.1e}")


# Stopped inside an inner loop (the checkpoint holds the sampled cross records and the Kronecker
# factors) and resumed with a new problem object: the uninterrupted run bit for bit.
def fresh():
    pb = nhgd.torch.TorchProblem(mlp(), data=data, clean_reg=net["clean_reg"])
    pb.initial_theta = theta0
    return pb


traj = dict(run, cross_rows="trajectory")
whole = nhgd.solve(data, problem=fresh(), **traj)
ckpt = os.path.join(checks.work, "trajectory")
a = nhgd.solve(data, problem=fresh(), checkpoint_dir=ckpt, halt_after=20, **traj)
b = nhgd.solve(data, problem=fresh(), checkpoint_dir=ckpt, **traj)
bits = all(x.tobytes() == y.tobytes() for x, y in (
    (whole.theta, b.theta), (whole.v, b.v),
    (whole.history["val_loss"][-len(b.history["val_loss"]):], b.history["val_loss"])))
report("torch MLP, nhgd kfac, cross rows trajectory, stopped inside an inner loop and resumed",
       a.stopped and a.steps < 3 and b.resumed and bits, f"stopped after {a.steps} outer steps")

def failing_loss(output, target):
    if rank == comm.size - 1:
        raise RuntimeError("torch loss broken on purpose")
    return nhgd.torch.cross_entropy(output, target)


broken = nhgd.torch.TorchProblem(mlp(), inner_loss=failing_loss, data=data)
expect_error("a torch callback that raises on the last rank",
             lambda: nhgd.solve(data, problem=broken, outer_steps=2, **common),
             "problem 'torch' (Python): inner_grad raised RuntimeError: torch loss broken on "
             "purpose")


class BrokenFactors(nhgd.torch.TorchProblem):
    """Kronecker factors that fail on the last rank (the kfac route agrees on it later)."""

    def layer_factors(self, theta, v, rows, after_grad):
        if rank == comm.size - 1:
            raise ValueError("factors broken on purpose")
        return super().layer_factors(theta, v, rows, after_grad)


expect_error("torch Kronecker factors that raise on the last rank",
             lambda: nhgd.solve(data, problem=BrokenFactors(mlp(), data=data), outer_steps=2,
                                estimator="nhgd", efim_route="kfac", **common),
             "problem 'torch' (Python): layer_factors raised ValueError: factors broken on "
             "purpose")



class BrokenCross(nhgd.torch.TorchProblem):
    """A sampled cross term that fails on the last rank: cross_keep raises, or cross_apply
    gives one term too few."""

    def __init__(self, how):
        super().__init__(mlp(), data=data)
        self.how = how

    def cross_keep(self, theta, v, rows, after_grad):
        if self.how == "raise" and rank == comm.size - 1:
            raise ValueError("records broken on purpose")
        return super().cross_keep(theta, v, rows, after_grad)

    def cross_apply(self, v, u, rows, K):
        q = super().cross_apply(v, u, rows, K)
        return q[1:] if self.how == "shape" and rank == comm.size - 1 else q


for how, text in (("raise", "cross_keep raised ValueError: records broken on purpose"),
                  ("shape", "cross_apply returned terms of shape")):
    expect_error(f"a sampled cross term that fails on the last rank ({how})",
                 lambda: nhgd.solve(data, problem=BrokenCross(how), outer_steps=2,
                                    cross_rows="trajectory", **common),
                 f"problem 'torch' (Python): {text}")
expect_error("a model that is not all nn.Linear refuses cross rows trajectory",
             lambda: nhgd.solve(data, problem=other, outer_steps=1, cross_rows="trajectory",
                                **common), "has per-row v but no sampled cross term")

# A rank may draw no row of a minibatch: every callback takes an empty list.
none = np.zeros(0, dtype=np.intc)
g0, l0 = mine.inner_grad(theta, v, none)
a0, g0s, c0 = mine.layer_factors(theta, v, none, False)
report("an empty row list", not g0.any() and l0 == 0 and not mine.hvp(theta, v, none, V).any()
       and [x.shape for x in a0] == [(0, i) for i, _ in mine.layers] and c0.shape == (0,)
       and mine.sample_grads(theta, v, none)[0].shape == (0, mine.d)
       and mine.cross_keep(theta, v, none, False).shape == (0, mine.cross_width)
       and mine.cross_apply(v, u, none, np.zeros((0, mine.cross_width))).shape == (0,))
data.close()
checks.exit()
