"""A problem written in numpy: multinomial logistic regression with one L2 log-weight per
feature tuned on the validation loss (the built-in `logreg`, docs/algorithm.md 4.2), solved by
the C engine, which calls these methods on every rank for that rank's rows.

usage (from the repository root, after the build):
    mpirun -n 2 python3 examples/python/numpy_logreg.py
"""
import os
import sys

import numpy as np

try:
    import nhgd
except ImportError:  # not installed: the package of the build tree
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.join(root, "build", "python"))
    import nhgd
from mpi4py import MPI


def softmax(Z):
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


class LogReg(nhgd.Problem):
    """theta is W (m x C, stored column by column: entry j + c m), v the m log-weights of
    R = (1/2) sum_j exp(v_j) ||W_j||^2; every row weighs 1."""

    name = "numpy-logreg"
    is_classifier = True

    def __init__(self, data):
        self.m, self.C = data.features, data.n_classes
        super().__init__(data, d=self.m * self.C, p=self.m)
        self.hess_rank = self.C

    def W(self, theta):
        return theta.reshape(self.C, self.m).T

    def flat(self, G):  # m x C -> theta's layout
        return G.T.ravel()

    def forward(self, theta, X, y):
        Z = X @ self.W(theta)
        top = Z.max(axis=1)
        loss = np.log(np.exp(Z - top[:, None]).sum(axis=1)) + top - Z[np.arange(len(y)), y]
        P = softmax(Z)
        return P, loss, Z

    def batch(self, rows):
        X, y = self.data.train
        return X[rows], y[rows]

    def inner_grad(self, theta, v, rows):
        X, y = self.batch(rows)
        P, loss, _ = self.forward(theta, X, y)
        P[np.arange(len(y)), y] -= 1.0
        return self.flat(X.T @ P), loss.sum()

    def sample_grads(self, theta, v, rows):
        X, y = self.batch(rows)
        P, _, _ = self.forward(theta, X, y)
        P[np.arange(len(y)), y] -= 1.0
        return np.einsum("kc,kj->kcj", P, X).reshape(len(rows), self.d), np.ones(len(rows))

    def hess_factors(self, theta, v, rows):
        # Column c of row k's factor: sqrt(p_c) x_k (x) (e_c - p), so that the C columns sum
        # to x x^T (x) (diag(p) - p p^T).
        X, y = self.batch(rows)
        P, _, _ = self.forward(theta, X, y)
        E = np.eye(self.C)[None, :, :] - P[:, None, :]  # k, c, c2
        F = np.sqrt(P)[:, :, None] * E
        return np.einsum("kab,kj->kabj", F, X).reshape(len(rows) * self.C, self.d)

    def hvp(self, theta, v, rows, V):
        X, y = self.batch(rows)
        P, _, _ = self.forward(theta, X, y)
        Zv = X @ self.W(V)
        return self.flat(X.T @ (P * Zv - P * (P * Zv).sum(axis=1, keepdims=True)))

    def reg(self, theta, v):
        ev = np.exp(v)
        W = self.W(theta)
        return 0.5 * (ev[:, None] * W * W).sum(), self.flat(ev[:, None] * W), np.tile(ev, self.C)

    def eval(self, X, y, theta, v, need_grad):
        P, loss, Z = self.forward(theta, X, y)
        correct = int((Z.argmax(axis=1) == y).sum())
        if not need_grad:
            return loss.sum(), None, correct
        P[np.arange(len(y)), y] -= 1.0
        return loss.sum(), self.flat(X.T @ P), correct

    def cross(self, theta, v, u):
        return np.exp(v) * (self.W(theta) * self.W(u)).sum(axis=1)


if __name__ == "__main__":
    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(0)
    m, C = 8, 3
    if comm.rank == 0:  # rank 0 makes the rows; from_arrays scatters them
        truth = rng.normal(size=(m, C))

        def split(n):
            X = rng.normal(size=(n, m))
            return X, (X @ truth + rng.gumbel(size=(n, C))).argmax(axis=1)

        data = nhgd.Data.from_arrays(split(400), split(200), split(200))
    else:
        data = nhgd.Data.from_arrays(None, None, None)
    result = nhgd.solve(data, problem=LogReg(data), estimator="cg", outer_steps=20,
                        inner_steps=30, batch=32, inner_lr=0.1, outer_lr=0.05, log_level=1)
    if comm.rank == 0:
        print(f"test accuracy {result.test_accuracy:.4f}, validation loss "
              f"{result.history['val_loss'][0]:.4f} -> {result.val_loss:.4f}; "
              f"log-weights {np.round(result.v, 2)}")
