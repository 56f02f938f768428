"""Problems from PyTorch models: nhgd.torch.TorchProblem builds the callbacks of a
:class:`nhgd.Problem` from a ``torch.nn.Module`` with autograd (needs PyTorch; Debian:
python3-torch). Import it as ``import nhgd.torch``."""
import warnings

import numpy as np
import torch

from ._problem import Problem

__all__ = ["TorchProblem", "cross_entropy"]


def cross_entropy(output, target):
    """The per-row cross-entropy of logits (the default inner and outer loss)."""
    return torch.nn.functional.cross_entropy(output, target, reduction="none")


def _tensor(a):
    """A float64 tensor viewing a numpy array without a copy (the engine's arrays are read-only
    views: torch warns about those, and nothing here writes to them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(a, dtype=np.float64))


class TorchProblem(Problem):
    """Hyper-cleaning with a PyTorch model: the bilevel problem

        inner  g(v, theta) = (1/n) sum_i w(v_i) l_i(theta) + r ||theta||^2   (training rows)
        outer  f(theta)    = (1/n_val) sum_j f_j(theta)                     (validation rows)

    where theta is the model's parameters, l_i = ``inner_loss(model(x_i), y_i)`` and f_j =
    ``outer_loss(model(x_j), y_j)``, and v holds one logit per training row (sharded with the
    rows, like the built-in ``mlp-hyperclean``), weighing its row by ``weight(v_i)`` (default
    the sigmoid). With the defaults (cross-entropy losses, sigmoid weights) and an
    ``nn.Sequential`` of ``nn.Linear`` layers with tanh between them this is the built-in
    ``mlp-hyperclean`` with ``--clean-reg r``, parameters laid out as it lays out theta.

    - ``model``: a ``torch.nn.Module`` mapping an n x m float64 batch to n rows of outputs,
      each row depending on its input row alone (no batch statistics); it is converted to
      float64 in place. Its parameters at construction are the initial theta
      (``initial_theta``, a numpy array in theta's layout, which may be set). The callbacks
      set the model's parameters to the theta they are called at; ``load(result.theta)``
      sets them to a run's result.
    - ``inner_loss``, ``outer_loss``: ``(output, target) -> per-row losses`` (a tensor of n;
      targets are int64 class labels, or float64 targets for regression data).
    - ``data``: the :class:`nhgd.Data` the problem is made for; ``clean_reg``: r;
      ``v_init``: every logit's initial value; ``weight``: an elementwise tensor function of
      the logits, ``block``: rows per forward pass in the passes over all rows (cross, eval).

    Autograd gives every derivative: the gradient by backward, the Hessian-vector product by
    double backward, J^T u by differentiating u . grad_theta g in v. When every parameter
    belongs to an ``nn.Linear`` and each such layer runs once per forward pass, theta is the
    layers' [W | b] blocks (each ``out x (in + 1)`` row by row: the column-major W_l of
    include/nhgd/problem.h) in module order, and forward hooks on the layers (their inputs,
    and a hook on their outputs' gradients in backward) give the Kronecker factors
    (``layer_factors``) that the nhgd estimator's kfac route needs, per-sample gradients, and
    the sampled cross term (``cross_keep``, ``cross_apply``: each row's layer inputs after the
    first layer, whose input must be the row itself, and pre-activation gradients) that
    ``cross_rows="trajectory"`` and ``"end"`` need; otherwise theta is the parameters
    flattened in ``model.parameters()`` order, the estimators that need no factors (cg,
    neumann, exact, nhgd's other routes: not) apply, and ``cross_rows="all"``.
    """

    name = "torch"
    v_per_sample = 1

    def __init__(self, model, inner_loss=cross_entropy, outer_loss=cross_entropy, data=None,
                 clean_reg=1e-3, v_init=0.0, weight=torch.sigmoid, block=4096, name=None):
        if data is None:
            raise ValueError("TorchProblem: data (an nhgd.Data) is required")
        self.model = model.double()
        self.inner_loss, self.outer_loss, self.weight = inner_loss, outer_loss, weight
        self.clean_reg, self.v_init, self.block = float(clean_reg), float(v_init), int(block)
        if name is not None:
            self.name = name
        self.is_classifier = data.n_classes > 0
        self._params = [p for p in model.parameters()]
        self._linears = self._dense_layers()
        if self._linears is None:
            self.layer_factors = self.sample_grads = self.cross_keep = self.cross_apply = None
            self._shapes = [(p.numel(),) for p in self._params]
        else:
            self.layers = [(lin.in_features + (lin.bias is not None), lin.out_features)
                           for lin in self._linears]
            # mlp-hyperclean's record: the inputs of layers 1.. and every layer's gradients.
            self.cross_width = sum(i for i, _ in self.layers[1:]) + sum(o for _, o in self.layers)
            self._shapes = list(self.layers)
            self._store = None  # the factors a capturing pass collects
            self._kept = None  # inner_grad's last factors, for layer_factors(after_grad)
            for lin in self._linears:
                lin.register_forward_hook(self._capture)
        X, y = data.train
        self._X, self._y = _tensor(X), self._target(y)
        d = sum(int(np.prod(s)) for s in self._shapes)
        super().__init__(data, d=d, p=data.rows("train")[0])
        with torch.no_grad():
            self.initial_theta = self._pack([p.detach() for p in self._params]).numpy().copy()

    # ---- parameters and theta ----

    def _dense_layers(self):
        """The model's nn.Linear layers when they hold every parameter, else None."""
        linears = [m for m in self.model.modules() if isinstance(m, torch.nn.Linear)]
        owned = {id(p) for lin in linears for p in lin.parameters(recurse=False)}
        if not linears or any(id(p) not in owned for p in self._params):
            return None
        self._params = [p for lin in linears for p in lin.parameters(recurse=False)]
        return linears

    def _pack(self, tensors):
        """theta's layout (a 1-D tensor) of tensors shaped as the parameters (in their order)."""
        if self._linears is None:
            return torch.cat([t.reshape(-1) for t in tensors])
        parts, it = [], iter(tensors)
        for lin in self._linears:
            w = next(it)
            parts.append(torch.cat([w, next(it)[:, None]], 1).reshape(-1)
                         if lin.bias is not None else w.reshape(-1))
        return torch.cat(parts)

    def _unpack(self, theta):
        """Tensors shaped as the parameters (views) of theta's layout."""
        out, at = [], 0
        if self._linears is None:
            for p in self._params:
                out.append(theta[at:at + p.numel()].view(p.shape))
                at += p.numel()
            return out
        for lin in self._linears:
            n_in, n_out = lin.in_features, lin.out_features
            width = n_in + (lin.bias is not None)
            block = theta[at:at + n_out * width].view(n_out, width)
            out.append(block[:, :n_in])
            if lin.bias is not None:
                out.append(block[:, n_in])
            at += n_out * width
        return out

    def load(self, theta):
        """Set the model's parameters to theta (d entries in theta's layout)."""
        with torch.no_grad():
            for p, t in zip(self._params, self._unpack(_tensor(theta))):
                p.copy_(t)

    def _target(self, y):
        y = np.asarray(y)
        return torch.from_numpy(y.astype(np.int64)) if y.dtype.kind in "iu" else _tensor(y)

    def _batch(self, rows):
        idx = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        return self._X[idx], self._y[idx]

    def _numpy(self, tensors):
        return self._pack([t if t is not None else torch.zeros_like(p)
                           for t, p in zip(tensors, self._params)]).detach().numpy()

    # ---- Kronecker factors from hooks ----

    def _capture(self, module, inputs, output):
        """Forward hook of each nn.Linear: during a capturing pass keep its input (with a
        trailing 1 for the bias) and, through a hook on its output, the gradient of the loss
        in its pre-activations when backward reaches it."""
        store = self._store
        if store is None:
            return
        a = inputs[0].detach()
        if module.bias is not None:
            a = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], 1)
        slot = len(store["a"])
        store["a"].append(a)
        store["g"].append(None)
        store["layer"].append(module)

        def keep(grad):
            store["g"][slot] = grad.detach()

        if output.requires_grad:
            output.register_hook(keep)

    def _factor_pass(self, theta, rows, who="layer_factors"):
        """Forward with the hooks on, backward of the unweighted sum of the rows' losses (the
        rows are independent, so each row's pre-activation gradients are those of its own
        loss): (a, g, losses) with a[l], g[l] per layer in the layers' order."""
        self.load(theta)
        X, y = self._batch(rows)
        self._store = {"a": [], "g": [], "layer": []}
        try:
            losses = self.inner_loss(self.model(X), y)
            torch.autograd.grad(losses.sum(), self._params, allow_unused=True)
            store = self._store
        finally:
            self._store = None
        if store["layer"] != self._linears or any(g is None for g in store["g"]):
            raise ValueError(f"{who}: each nn.Linear must run once per forward pass, in module "
                             "order, on the path to the loss")
        return store["a"], store["g"], losses.detach()

    def _layer_grads(self, a, g, w):
        """sum_k w_k a_k g_k^T per layer, in theta's layout."""
        return torch.cat([((w[:, None] * gl).T @ al).reshape(-1) for al, gl in zip(a, g)])

    # ---- the callbacks ----

    def init(self, theta, v):
        """theta: initial_theta; v: v_init."""
        theta[:] = self.initial_theta
        v[:] = self.v_init

    def _weights(self, v, rows):
        return self.weight(_tensor(v)[torch.from_numpy(np.asarray(rows, dtype=np.int64))])

    def inner_grad(self, theta, v, rows):
        w = self._weights(v, rows).detach()
        if self._linears is not None:
            # The factors of this pass serve a layer_factors call that follows (after_grad).
            a, g, losses = self._factor_pass(theta, rows)
            self._kept = (np.asarray(rows), a, g, w)
            return self._layer_grads(a, g, w).numpy(), float(torch.dot(w, losses))
        self.load(theta)
        X, y = self._batch(rows)
        loss = torch.dot(w, self.inner_loss(self.model(X), y))
        return self._numpy(torch.autograd.grad(loss, self._params, allow_unused=True)), \
            float(loss)

    def _factors(self, theta, v, rows, after_grad, who):
        """(a, g, c) as tensors for the rows, from inner_grad's pass when after_grad and it holds
        them, else from a pass of their own."""
        kept = self._kept if after_grad else None
        if kept is not None and np.array_equal(kept[0], rows):  # the engine's usual call
            return kept[1], kept[2], kept[3]
        if kept is not None:
            where = {int(r): k for k, r in enumerate(kept[0])}
            if all(int(r) in where for r in rows):
                cols = torch.tensor([where[int(r)] for r in rows], dtype=torch.int64)
                return [al[cols] for al in kept[1]], [gl[cols] for gl in kept[2]], kept[3][cols]
        a, g, _ = self._factor_pass(theta, rows, who)
        return a, g, self._weights(v, rows).detach()

    def layer_factors(self, theta, v, rows, after_grad):
        """(a, g, c): each layer's inputs and unweighted pre-activation gradients per row, and
        the rows' weights; after_grad reuses inner_grad's pass when it holds these rows."""
        a, g, c = self._factors(theta, v, rows, after_grad, "layer_factors")
        return [al.numpy() for al in a], [gl.numpy() for gl in g], c.numpy()

    def cross_keep(self, theta, v, rows, after_grad):
        """Per row, as mlp-hyperclean keeps it: the inputs of layers 1.. (a trailing 1 for a
        bias), then every layer's unweighted pre-activation gradients; layer 0's input is the
        row itself, which cross_apply reads again from the data."""
        a, g, _ = self._factors(theta, v, rows, after_grad, "cross_keep")
        X = self._batch(rows)[0]
        if not torch.equal(a[0][:, :X.shape[1]], X):
            raise ValueError("cross_keep: the first nn.Linear must take the model's input rows "
                             "as they are (use cross_rows='all' for this model)")
        return torch.cat(a[1:] + g, 1).numpy()

    def cross_apply(self, v, u, rows, K):
        """q_i = w'(v_i) <s_i, u> = w'(v_i) sum_l g_l^T U_l a_l per row, U_l being u's block of
        layer l (out_l x in_l) and a_l, g_l what cross_keep kept."""
        idx = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        K, U = _tensor(K), _tensor(u)
        a = self._X[idx]
        if self._linears[0].bias is not None:
            a = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], 1)
        q = torch.zeros(len(rows), dtype=torch.float64)
        at_u, at_a = 0, 0
        at_g = sum(i for i, _ in self.layers[1:])
        for layer, (n_in, n_out) in enumerate(self.layers):
            if layer > 0:
                a = K[:, at_a:at_a + n_in]
                at_a += n_in
            block = U[at_u:at_u + n_in * n_out].view(n_out, n_in)
            q += ((a @ block.T) * K[:, at_g:at_g + n_out]).sum(1)
            at_u, at_g = at_u + n_in * n_out, at_g + n_out
        logits = _tensor(v)[idx].clone().requires_grad_(True)
        slope = torch.autograd.grad(self.weight(logits).sum(), logits)[0]  # w'(v_i), elementwise
        return (slope * q).numpy()

    def sample_grads(self, theta, v, rows):
        """Per-row gradients vec(a_l g_l^T) layer by layer, from the factors."""
        a, g, c = self.layer_factors(theta, v, rows, False)
        return np.concatenate([np.einsum("ko,kj->koj", gl, al).reshape(len(rows), -1)
                               if len(rows) else np.zeros((0, gl.shape[1] * al.shape[1]))
                               for al, gl in zip(a, g)], axis=1), c

    def _weighted_grad(self, rows, v, create_graph):
        """grad_theta of sum_k w_k l_k over the rows (parameter-shaped tensors)."""
        X, y = self._batch(rows)
        loss = torch.dot(self._weights(v, rows).detach(), self.inner_loss(self.model(X), y))
        return torch.autograd.grad(loss, self._params, create_graph=create_graph,
                                   allow_unused=True)

    def hvp(self, theta, v, rows, V):
        """The exact Hessian-vector product by double backward."""
        self.load(theta)
        grads = self._weighted_grad(rows, v, True)
        directions = self._unpack(_tensor(V))
        dot = sum((gr * dv).sum() for gr, dv in zip(grads, directions) if gr is not None)
        if not torch.is_tensor(dot) or not dot.requires_grad:
            return np.zeros(self.d)
        return self._numpy(torch.autograd.grad(dot, self._params, allow_unused=True))

    def reg(self, theta, v):
        r = self.clean_reg
        return r * float(np.dot(theta, theta)), 2.0 * r * theta, np.full(self.d, 2.0 * r)

    def eval(self, X, y, theta, v, need_grad):
        self.load(theta)
        loss_sum, correct = 0.0, 0
        grads = [torch.zeros_like(p) for p in self._params]
        for b0 in range(0, len(y), self.block):
            Xb, yb = _tensor(X[b0:b0 + self.block]), self._target(y[b0:b0 + self.block])
            with torch.set_grad_enabled(need_grad):
                out = self.model(Xb)
                loss = self.outer_loss(out, yb).sum()
            if need_grad:
                for acc, gr in zip(grads, torch.autograd.grad(loss, self._params,
                                                              allow_unused=True)):
                    if gr is not None:
                        acc += gr
            loss_sum += float(loss)
            if self.is_classifier:
                correct += int((out.argmax(dim=1) == yb).sum())
        return loss_sum, self._numpy(grads) if need_grad else None, correct

    def cross(self, theta, v, u):
        """J^T u by differentiating u . grad_theta (sum_i w(v_i) l_i) in v, over this rank's
        rows in blocks, divided by the training rows of all ranks."""
        self.load(theta)
        directions = self._unpack(_tensor(u))
        n_local, n_global = len(v), self.p
        out = np.zeros(n_local)
        for b0 in range(0, n_local, self.block):
            rows = np.arange(b0, min(b0 + self.block, n_local))
            logits = _tensor(v[b0:b0 + len(rows)]).clone().requires_grad_(True)
            X, y = self._batch(rows)
            loss = torch.dot(self.weight(logits), self.inner_loss(self.model(X), y))
            grads = torch.autograd.grad(loss, self._params, create_graph=True, allow_unused=True)
            dot = sum((gr * du).sum() for gr, du in zip(grads, directions) if gr is not None)
            if torch.is_tensor(dot) and dot.requires_grad:
                out[b0:b0 + len(rows)] = torch.autograd.grad(dot, logits)[0].numpy() / n_global
        return out
