"""Problems in Python: the numpy logreg of examples/python/numpy_logreg.py matches the built-in
logreg's hypergradient to 1e-10 for the exact and cg estimators and for nhgd's dense route
(same data, same options); its trajectory is the built-in's to 1e-10 over a few outer steps;
so does a numpy hyperclean (v per training row, sharded) for exact and cg, and with its sampled
cross term (cross_keep, cross_apply) for cross rows trajectory and end, also stopped inside an
inner loop and resumed (bit for bit); nhgd.check_problem
passes both and finds a wrong cross term and a wrong sampled one; a sampled cross term
without its other half, without cross_width or for replicated v is refused;
a method that raises, returns the wrong shape or NaN, on one rank only, fails the run with
one message naming the method on every rank. Run under mpirun at any rank count."""
import os
import sys

import numpy as np
from mpi4py import MPI

import nhgd
from checks import Checks, softmax_data

sys.path.insert(0, os.path.join(os.environ.get("NHGD_SOURCE_DIR", "."), "examples", "python"))
from numpy_logreg import LogReg  # noqa: E402

comm = MPI.COMM_WORLD
rank = comm.rank
checks = Checks("problem")
report, expect_error = checks.report, checks.expect_error


m, C = 6, 3
data = softmax_data(3, m, C, (240, 90, 60))

common = dict(inner_steps=25, batch=16, inner_lr=0.2, log_level=0, v_init=0.0)


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


for est, extra in (("exact", {}), ("cg", {"hvp_steps": 50}),
                   ("nhgd", {"efim_route": "dense"})):
    builtin = nhgd.hypergradient(data, problem="logreg", estimator=est, **common, **extra)
    mine = nhgd.hypergradient(data, problem=LogReg(data), estimator=est, **common, **extra)
    err = rel(mine.hypergradient, builtin.hypergradient)
    report(f"hypergradient, {est}", err <= 1e-10 and np.abs(builtin.hypergradient).max() > 0,
           f"relative difference {err:.2e}")

builtin = nhgd.solve(data, problem="logreg", estimator="cg", outer_steps=4, outer_lr=0.05,
                     **common)
mine = nhgd.solve(data, problem=LogReg(data), estimator="cg", outer_steps=4, outer_lr=0.05,
                  **common)
err = max(rel(mine.v, builtin.v), rel(mine.theta, builtin.theta),
          rel(mine.history["val_loss"], builtin.history["val_loss"]))
report("4 outer steps of cg", err <= 1e-10, f"relative difference {err:.2e}")


class Hyperclean(LogReg):
    """The built-in hyperclean in numpy: a weight sigmoid(v_i) per training row (v sharded with
    the rows), R = r ||W||^2."""

    name = "numpy-hyperclean"
    v_per_sample = 1

    def __init__(self, data, r=1e-3):
        super().__init__(data)
        self.p, self.r = data.rows("train")[0], r

    def weights(self, v, rows):
        return 1.0 / (1.0 + np.exp(-v[rows]))

    def inner_grad(self, theta, v, rows):
        X, y = self.batch(rows)
        P, loss, _ = self.forward(theta, X, y)
        w = self.weights(v, rows)
        P[np.arange(len(y)), y] -= 1.0
        return self.flat(X.T @ (w[:, None] * P)), float(np.dot(w, loss))

    def sample_grads(self, theta, v, rows):
        return super().sample_grads(theta, v, rows)[0], self.weights(v, rows)

    def hess_factors(self, theta, v, rows):
        Z = super().hess_factors(theta, v, rows).reshape(len(rows), self.C, self.d)
        return (np.sqrt(self.weights(v, rows))[:, None, None] * Z).reshape(-1, self.d)

    def hvp(self, theta, v, rows, V):
        X, y = self.batch(rows)
        P, _, _ = self.forward(theta, X, y)
        Zv = X @ self.W(V)
        w = self.weights(v, rows)[:, None]
        return self.flat(X.T @ (w * (P * Zv - P * (P * Zv).sum(axis=1, keepdims=True))))

    def reg(self, theta, v):
        return self.r * float(np.dot(theta, theta)), 2.0 * self.r * theta, \
            np.full(self.d, 2.0 * self.r)

    def cross(self, theta, v, u):
        X, y = self.data.train
        P, _, _ = self.forward(theta, X, y)
        P[np.arange(len(y)), y] -= 1.0
        sg = 1.0 / (1.0 + np.exp(-v))
        return sg * (1.0 - sg) * ((X @ self.W(u)) * P).sum(axis=1) / self.p


class SampledHyperclean(Hyperclean):
    """With the sampled cross term of the built-in: the residuals r_i per row, and
    q_i = w'(v_i) r_i^T (U^T x_i)."""

    cross_width = C

    def cross_keep(self, theta, v, rows, after_grad):
        X, y = self.batch(rows)
        P, _, _ = self.forward(theta, X, y)
        P[np.arange(len(y)), y] -= 1.0
        return P

    def cross_apply(self, v, u, rows, K):
        sg = self.weights(v, rows)
        return sg * (1.0 - sg) * ((self.batch(rows)[0] @ self.W(u)) * K).sum(axis=1)


for est in ("exact", "cg"):
    builtin = nhgd.hypergradient(data, problem="hyperclean", estimator=est, **common)
    mine = nhgd.hypergradient(data, problem=Hyperclean(data), estimator=est, **common)
    a, b = mine.gather_v(), builtin.gather_v()
    ha = np.concatenate(comm.allgather(mine.hypergradient))
    hb = np.concatenate(comm.allgather(builtin.hypergradient))
    err = max(rel(ha, hb), rel(a, b))
    report(f"per-row v (hyperclean), hypergradient, {est}", err <= 1e-10 and np.abs(hb).max() > 0,
           f"relative difference {err:.2e}")
errors = nhgd.check_problem(Hyperclean(data))
report("check_problem on the numpy hyperclean", max(errors.values()) <= 1e-5,
       ", ".join(f"{k} {e:.1e}" for k, e in errors.items()))

TIMES = ("wall_time", "solver_time", "eval_time")
for rows_from in ("trajectory", "end"):
    run = dict(estimator="cg", hvp_steps=30, outer_steps=3, outer_lr=50.0,
               cross_rows=rows_from, cross_samples=50, **common)
    builtin = nhgd.solve(data, problem="hyperclean", **run)
    mine = nhgd.solve(data, problem=SampledHyperclean(data), **run)
    err = max([rel(mine.theta, builtin.theta), rel(mine.gather_v(), builtin.gather_v())] +
              [rel(mine.history[k], builtin.history[k]) for k in nhgd.HISTORY_COLUMNS
               if k not in TIMES and np.abs(builtin.history[k]).max() > 0])
    report(f"per-row v (hyperclean), 3 outer steps of cg, cross rows {rows_from}",
           err <= 1e-10 and np.abs(builtin.gather_v()).max() > 0, f"relative difference {err:.2e}")
# A checkpoint inside an inner loop holds the records kept so far: stopped there and resumed, the
# run is the uninterrupted one bit for bit.
run = dict(estimator="cg", hvp_steps=30, outer_steps=3, outer_lr=50.0, cross_rows="trajectory",
           **common)
whole = nhgd.solve(data, problem=SampledHyperclean(data), **run)
ckpt = os.path.join(checks.work, "trajectory")
a = nhgd.solve(data, problem=SampledHyperclean(data), checkpoint_dir=ckpt, halt_after=35, **run)
b = nhgd.solve(data, problem=SampledHyperclean(data), checkpoint_dir=ckpt, **run)
bits = all(x.tobytes() == y.tobytes() for x, y in (
    (whole.theta, b.theta), (whole.gather_v(), b.gather_v()),
    (whole.history["val_loss"][-len(b.history["val_loss"]):], b.history["val_loss"])))
report("per-row v (hyperclean), cross rows trajectory, stopped inside an inner loop and resumed",
       a.stopped and b.resumed and bits, f"stopped after {a.steps} outer steps")
errors = nhgd.check_problem(SampledHyperclean(data))
report("check_problem on the numpy hyperclean with a sampled cross term",
       max(errors.values()) <= 1e-5 and "cross_apply" in errors,
       ", ".join(f"{k} {e:.1e}" for k, e in errors.items()))


class WrongSampled(SampledHyperclean):
    def cross_apply(self, v, u, rows, K):
        return super().cross_apply(v, u, rows, K) * np.where(np.asarray(rows) == 0, 2.0, 1.0)


errors = nhgd.check_problem(WrongSampled(data))
report("check_problem finds a sampled cross term off by 2 in one row",
       errors["cross_apply"] > 0.01 and
       max(e for k, e in errors.items() if k != "cross_apply") <= 1e-5,
       f"cross_apply {errors['cross_apply']:.2f}")


class Half(Hyperclean):
    cross_width = C
    cross_keep = SampledHyperclean.cross_keep


class NoWidth(SampledHyperclean):
    cross_width = 0


class Replicated(LogReg):
    cross_width = C
    cross_keep, cross_apply = SampledHyperclean.cross_keep, SampledHyperclean.cross_apply


for label, pb, text in (
        ("cross_keep without cross_apply", Half(data),
         "cross_keep and cross_apply come together (it defines only cross_keep)"),
        ("a sampled cross term without cross_width", NoWidth(data),
         "cross_keep needs cross_width, a whole number >= 1, not 0"),
        ("a sampled cross term for replicated v", Replicated(data),
         "cross_keep and cross_apply are for per-row v")):
    expect_error(f"{label} is refused", lambda: nhgd.solve(data, problem=pb, outer_steps=1,
                                                           **common), text)

# The finite-difference checker passes the numpy logreg and catches a wrong derivative.
errors = nhgd.check_problem(LogReg(data))
report("check_problem on the numpy logreg", max(errors.values()) <= 1e-5,
       ", ".join(f"{k} {e:.1e}" for k, e in errors.items()))


class WrongCross(LogReg):
    def cross(self, theta, v, u):
        return 2.0 * super().cross(theta, v, u)


errors = nhgd.check_problem(WrongCross(data))
report("check_problem finds a cross term off by 2", errors["cross"] > 0.1 and
       max(e for k, e in errors.items() if k != "cross") <= 1e-5, f"cross {errors['cross']:.2f}")


class Broken(LogReg):
    """LogReg with one method broken on the last rank."""

    def __init__(self, data, how):
        super().__init__(data)
        self.how = how

    def inner_grad(self, theta, v, rows):
        g, loss = super().inner_grad(theta, v, rows)
        if rank == comm.size - 1:
            if self.how == "raise":
                raise RuntimeError("broken on purpose")
            if self.how == "shape":
                return g[:-1], loss
            if self.how == "nan":
                g = g.copy()
                g[0] = np.nan
        return g, loss


for how, text in (("raise", "inner_grad raised RuntimeError: broken on purpose"),
                  ("shape", "inner_grad returned a gradient of shape"),
                  ("nan", "inner_grad returned a gradient that is not finite")):
    expect_error(f"a callback that fails on the last rank ({how})",
                 lambda: nhgd.solve(data, problem=Broken(data, how), outer_steps=2, **common),
                 f"problem 'numpy-logreg' (Python): {text}")
data.close()
checks.exit()
