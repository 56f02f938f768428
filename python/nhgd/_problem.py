"""Problems written in Python: a subclass of nhgd.Problem whose numpy methods the C engine calls
through cffi callbacks (on every rank, each with its own rows)."""
import numpy as np
from mpi4py import MPI

from ._nhgd_ffi import ffi, lib

# The optional callbacks: a problem that has the method (not None) gets the C callback.
OPTIONAL = ("sample_grads", "hess_factors", "hvp", "outer_grad_v", "layer_factors", "cross_keep",
            "cross_apply")


def _has(problem, name):
    """Whether the problem defines the optional method name (an instance may set it to None)."""
    return getattr(problem, name, None) is not None


class Problem:
    """A bilevel problem in numpy (include/nhgd/problem.h gives the mathematics):

        inner  g(v, theta) = (1/n) sum_i w_i(v) l_i(theta) + R(v, theta)   (training rows)
        outer  f(v, theta) = (1/n_val) sum_j f_j(theta) [+ terms in v]    (validation rows)

    Set ``d`` (entries of theta) and ``p`` (of v) in ``__init__`` (``v_per_sample = w > 0``:
    w entries of v per training row, each rank holding its rows' entries; ``hess_rank`` q for
    ``hess_factors``; ``is_classifier`` for accuracies; ``layers`` for ``layer_factors``;
    ``cross_width`` for ``cross_keep``).
    ``self.data`` is the :class:`Data`;
    ``rows`` are local indices into this rank's ``data.train`` rows. Arrays passed in are
    read-only views of the engine's memory, valid during the call only.

    Required: ``inner_grad``, ``reg``, ``eval`` and ``cross``; ``init`` defaults to zeros.
    Optional: ``hvp`` (cg, neumann, exact), ``sample_grads`` and ``hess_factors`` (the nhgd
    estimator's dense routes), ``layer_factors`` (its kfac route, for networks of dense
    layers), ``outer_grad_v`` (f depends on v directly), ``cross_keep`` with ``cross_apply``
    (per-row v: the sampled cross term of ``cross_rows="trajectory"`` and ``"end"``).

    A method that raises, returns the wrong shape or a value that is not finite makes the run
    fail with :class:`Error` on every rank, naming the method and the problem.
    """

    name = "python"
    v_per_sample = 0
    hess_rank = 0
    is_classifier = False
    #: With ``layer_factors``: [(in_0, out_0), ...], theta being the concatenation of the
    #: layers' in_l x out_l matrices W_l stored column by column (entry j + o in_l of layer l;
    #: a bias is the last of the in_l rows, its input a constant 1).
    layers = None
    #: With ``cross_keep``: the numbers it keeps per row (at least 1).
    cross_width = 0

    def __init__(self, data, d, p):
        self.data, self.d, self.p = data, int(d), int(p)

    def init(self, theta, v):
        """Fill theta (d) and this rank's v in place (default: zeros)."""
        theta[:] = 0.0
        v[:] = 0.0

    def inner_grad(self, theta, v, rows):
        """(g, loss): sum over the rows of w_i(v) grad l_i(theta) (d) and of w_i(v) l_i."""
        raise NotImplementedError

    def reg(self, theta, v):
        """(value, grad, hdiag): R(v, theta), grad_theta R (d), the diagonal of its Hessian (d)."""
        raise NotImplementedError

    def eval(self, X, y, theta, v, need_grad):
        """(loss_sum, gtheta, correct) over the rows (X, y) of a split (validation or test,
        this rank's): the sum of per-row outer losses, the sum of their theta gradients (d;
        None when not need_grad) and the rows classified right (0 if not a classifier)."""
        raise NotImplementedError

    def cross(self, theta, v, u):
        """J^T u with J = d^2 g / (d theta d v): this rank's entries of v's layout."""
        raise NotImplementedError

    #: Optional (define it in a subclass, with ``layers``): ``layer_factors(theta, v, rows,
    #: after_grad)`` returns ``(a, g, c)`` for the listed rows: ``a[l]`` (nb x in_l) the inputs
    #: of layer l (a trailing 1 for a bias), ``g[l]`` (nb x out_l) the gradients of the row's
    #: unweighted loss l_i in the layer's pre-activations, so that the row's gradient in W_l is
    #: a_l g_l^T, and ``c`` (nb) the weights w_i(v). ``after_grad`` true says that inner_grad
    #: has just run at this theta and v on rows that include these (its pass may be reused).
    layer_factors = None

    #: Optional, for per-row v whose row i's entries of J^T u depend on row i alone,
    #: (J^T u)_i = (1/n) q_i(theta, v, u) with q_i linear in u (both or neither, with
    #: ``cross_width``): ``cross_keep(theta, v, rows, after_grad)`` returns K (nb x cross_width),
    #: what each listed row's q_i needs of theta (for a softmax model its residuals r_i, so that
    #: q_i = w_i'(v_i) r_i^T U^T x_i); ``after_grad`` as in ``layer_factors``.
    #: ``cross_apply(v, u, rows, K)`` returns q (nb numbers; nb x w for ``v_per_sample`` w > 1):
    #: q_{rows[k]}(u) from row k of a K that cross_keep gave, maybe at another theta. The engine
    #: adds each, scaled, to its row's entries (rows may repeat). With them
    #: ``cross_rows="trajectory"`` keeps K along the inner loop and ``"end"`` at its last
    #: iterate, instead of ``cross``'s pass over every row.
    cross_keep = None
    cross_apply = None


def _n_v(pb):
    return pb.data.train.n_local * pb.v_per_sample if pb.v_per_sample else pb.p


def _view(ptr, n, shape=None):
    a = np.frombuffer(ffi.buffer(ptr, max(n, 0) * 8), dtype=np.float64) if n > 0 else \
        np.zeros(0)
    return a.reshape(shape) if shape is not None else a


def _ro(a):
    a.flags.writeable = False
    return a


def _put(out, value, name, what, shape):
    """Copy a callback's array into the engine's memory, checking its shape and values."""
    value = np.asarray(value, dtype=np.float64)
    if value.shape != shape:
        raise _Bad(lib.NHGD_ERR_ARG, f"{name} returned {what} of shape {value.shape}, "
                   f"expected {shape}")
    if not np.isfinite(value).all():
        raise _Bad(lib.NHGD_ERR_NUMERIC, f"{name} returned {what} that is not finite")
    out[...] = value


def _scalar(value, name, what):
    """A callback's number, checked like an array."""
    box = np.zeros(1)
    _put(box, np.reshape(value, 1), name, what, (1,))
    return box[0]


class _Bad(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _call(method, pb, body):
    """Run body(problem) for the C callback method: 0, or the status of an error recorded
    with a message naming the method (the engine agrees on it across ranks)."""
    obj = ffi.from_handle(pb.ctx)
    try:
        body(obj)
        return 0
    except _Bad as e:
        status, text = e.status, str(e)
    except BaseException as e:  # noqa: B036 (nothing may unwind the C stack)
        status, text = lib.NHGD_ERR_ARG, f"{method} raised {type(e).__name__}: {e}"
    lib.nhgd_error_clear()
    lib.pynhgd_error_set(status, f"problem '{obj.name}' (Python): {text}".encode())
    return status


def _state(pb, theta, v):
    """Read-only views of theta and this rank's v."""
    return _ro(_view(theta, pb.d)), _ro(_view(v, _n_v(pb)))


def _rows(nb, rows):
    return np.frombuffer(ffi.buffer(rows, nb * 4), dtype=np.intc).copy() if nb > 0 else \
        np.zeros(0, dtype=np.intc)


@ffi.def_extern()
def pynhgd_cb_init(pb, theta, v):
    def body(obj):
        obj.init(_view(theta, pb.d), _view(v, _n_v(pb)))
    return _call("init", pb, body)


@ffi.def_extern()
def pynhgd_cb_inner_grad(pb, theta, v, nb, rows, g, loss):
    def body(obj):
        grad, value = obj.inner_grad(*_state(pb, theta, v), _rows(nb, rows))
        _put(_view(g, pb.d), grad, "inner_grad", "a gradient", (pb.d,))
        loss[0] = _scalar(value, "inner_grad", "a loss")
    return _call("inner_grad", pb, body)


@ffi.def_extern()
def pynhgd_cb_sample_grads(pb, theta, v, nb, rows, S, c):
    def body(obj):
        grads, weights = obj.sample_grads(*_state(pb, theta, v), _rows(nb, rows))
        _put(_view(S, nb * pb.d, (nb, pb.d)), grads, "sample_grads", "gradients", (nb, pb.d))
        _put(_view(c, nb), weights, "sample_grads", "weights", (nb,))
    return _call("sample_grads", pb, body)


@ffi.def_extern()
def pynhgd_cb_hess_factors(pb, theta, v, nb, rows, Z):
    def body(obj):
        q = pb.hess_rank
        factors = obj.hess_factors(*_state(pb, theta, v), _rows(nb, rows))
        _put(_view(Z, nb * q * pb.d, (nb * q, pb.d)), factors, "hess_factors", "factors",
             (nb * q, pb.d))
    return _call("hess_factors", pb, body)


@ffi.def_extern()
def pynhgd_cb_layer_factors(pb, theta, v, nb, rows, after_grad, a, g, c):
    def body(obj):
        fa, fg, fc = obj.layer_factors(*_state(pb, theta, v), _rows(nb, rows), bool(after_grad))
        if len(fa) != pb.n_layers or len(fg) != pb.n_layers:
            raise _Bad(lib.NHGD_ERR_ARG, f"layer_factors returned {len(fa)} and {len(fg)} "
                       f"factors, expected {pb.n_layers} of each")
        for layer in range(pb.n_layers):
            n_in, n_out = pb.layer_in[layer], pb.layer_out[layer]
            _put(_view(a[layer], nb * n_in, (nb, n_in)), fa[layer], "layer_factors",
                 f"inputs of layer {layer}", (nb, n_in))
            _put(_view(g[layer], nb * n_out, (nb, n_out)), fg[layer], "layer_factors",
                 f"gradients of layer {layer}", (nb, n_out))
        if c != ffi.NULL:
            _put(_view(c, nb), fc, "layer_factors", "weights", (nb,))
    return _call("layer_factors", pb, body)


@ffi.def_extern()
def pynhgd_cb_cross_keep(pb, theta, v, nb, rows, after_grad, K):
    def body(obj):
        w = pb.cross_width
        kept = obj.cross_keep(*_state(pb, theta, v), _rows(nb, rows), bool(after_grad))
        _put(_view(K, nb * w, (nb, w)), kept, "cross_keep", "rows", (nb, w))
    return _call("cross_keep", pb, body)


@ffi.def_extern()
def pynhgd_cb_cross_apply(pb, v, u, nb, rows, K, scale, out):
    def body(obj):
        w, ids = pb.v_per_sample, _rows(nb, rows)
        q = np.zeros((nb, w))
        kept = _ro(_view(K, nb * pb.cross_width, (nb, pb.cross_width)))
        terms = obj.cross_apply(_ro(_view(v, _n_v(pb))), _ro(_view(u, pb.d)), ids, kept)
        _put(q.reshape(nb) if w == 1 else q, terms, "cross_apply", "terms",
             (nb,) if w == 1 else (nb, w))
        _add_rows(_view(out, _n_v(pb)), ids, q, _view(scale, nb), w)
    return _call("cross_apply", pb, body)


def _add_rows(out, rows, q, scale, w):
    """out's entries of row rows[k] += scale[k] q[k] (q: nb x w), repeated rows in list order."""
    if len(rows):
        np.add.at(out.reshape(-1, w), rows, scale[:, None] * q)


@ffi.def_extern()
def pynhgd_cb_hvp(pb, theta, v, nb, rows, V, HV):
    def body(obj):
        hv = obj.hvp(*_state(pb, theta, v), _rows(nb, rows), _ro(_view(V, pb.d)))
        _put(_view(HV, pb.d), hv, "hvp", "a product", (pb.d,))
    return _call("hvp", pb, body)


@ffi.def_extern()
def pynhgd_cb_reg(pb, theta, v, value, grad, hdiag):
    def body(obj):
        val, gr, hd = obj.reg(*_state(pb, theta, v))
        if value != ffi.NULL:
            value[0] = _scalar(val, "reg", "a value")
        if grad != ffi.NULL:
            add = np.zeros(pb.d)
            _put(add, gr, "reg", "a gradient", (pb.d,))
            _view(grad, pb.d)[:] += add
        if hdiag != ffi.NULL:
            _put(_view(hdiag, pb.d), hd, "reg", "a Hessian diagonal", (pb.d,))
    return _call("reg", pb, body)


@ffi.def_extern()
def pynhgd_cb_eval(pb, split, theta, v, loss_sum, gtheta, correct):
    def body(obj):
        n, m = split.n_local, split.m
        X = _ro(_view(split.X, n * m, (n, m))) if n > 0 else np.zeros((0, m))
        if n > 0 and split.y_class != ffi.NULL:
            y = np.frombuffer(ffi.buffer(split.y_class, n * 4), dtype=np.int32)
        elif n > 0:
            y = _ro(_view(split.y_real, n))
        else:
            y = np.zeros(0, dtype=np.int32)
        need = gtheta != ffi.NULL
        loss, g, hits = obj.eval(X, y, *_state(pb, theta, v), need)
        loss_sum[0] = _scalar(loss, "eval", "a loss")
        if need:
            _put(_view(gtheta, pb.d), g, "eval", "a gradient", (pb.d,))
        if correct != ffi.NULL:
            correct[0] = int(hits or 0)
    return _call("eval", pb, body)


@ffi.def_extern()
def pynhgd_cb_outer_grad_v(pb, theta, v, gv):
    def body(obj):
        n = _n_v(pb)
        _put(_view(gv, n), obj.outer_grad_v(*_state(pb, theta, v)), "outer_grad_v",
             "a gradient", (n,))
    return _call("outer_grad_v", pb, body)


@ffi.def_extern()
def pynhgd_cb_cross(pb, theta, v, u, out):
    def body(obj):
        n = _n_v(pb)
        _put(_view(out, n), obj.cross(*_state(pb, theta, v), _ro(_view(u, pb.d))), "cross",
             "a cross term", (n,))
    return _call("cross", pb, body)


def create(problem, data, handle):
    """The C problem of a Problem instance (its callbacks call back into it through handle,
    which the caller keeps alive as long as the problem). Not collective."""
    ops = ffi.new("nhgd_problem_ops *")
    for name in ("init", "inner_grad", "reg", "eval", "cross"):
        setattr(ops, name, getattr(lib, "pynhgd_cb_" + name))
    for name in OPTIONAL:
        if _has(problem, name):
            setattr(ops, name, getattr(lib, "pynhgd_cb_" + name))
    out = ffi.new("nhgd_problem **")
    try:
        layers = _layer_shapes(problem) if _has(problem, "layer_factors") else []
        if _has(problem, "cross_keep") or _has(problem, "cross_apply"):
            _check_cross(problem)
    except ValueError as e:
        lib.nhgd_error_clear()
        return lib.pynhgd_error_set(lib.NHGD_ERR_ARG, str(e).encode()), out
    rc = lib.nhgd_problem_create_custom(str(problem.name).encode(), data, ops,
                                        ffi.sizeof("nhgd_problem_ops"), handle, out)
    if rc == 0:
        pb = out[0]
        pb.d, pb.p = problem.d, problem.p
        pb.v_per_sample, pb.hess_rank = int(problem.v_per_sample), int(problem.hess_rank)
        pb.is_classifier = int(bool(problem.is_classifier))
        if layers:
            # The shape arrays live as long as the Python problem (the C problem reads them).
            problem._c_layers = (ffi.new("int[]", [i for i, _ in layers]),
                                 ffi.new("int[]", [o for _, o in layers]))
            pb.n_layers = len(layers)
            pb.layer_in, pb.layer_out = problem._c_layers
        if _has(problem, "cross_keep"):
            pb.cross_width = int(problem.cross_width)
    return rc, out


def _check_cross(problem):
    """cross_keep and cross_apply come together, for per-row v, with a cross_width."""
    name = problem.name
    if not (_has(problem, "cross_keep") and _has(problem, "cross_apply")):
        only = "cross_keep" if _has(problem, "cross_keep") else "cross_apply"
        raise ValueError(f"problem '{name}': cross_keep and cross_apply come together (it "
                         f"defines only {only})")
    if int(problem.v_per_sample) < 1:
        raise ValueError(f"problem '{name}': cross_keep and cross_apply are for per-row v "
                         "(v_per_sample > 0)")
    width = problem.cross_width
    if not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"problem '{name}': cross_keep needs cross_width, a whole number >= 1, "
                         f"not {width!r}")


def _layer_shapes(problem):
    """The (in, out) pairs of a problem with layer_factors, checked against d."""
    try:
        layers = [(int(i), int(o)) for i, o in problem.layers]
    except (TypeError, ValueError):
        layers = []
    if not layers or min(min(s) for s in layers) < 1:
        raise ValueError(f"problem '{problem.name}': layer_factors needs layers, a list of "
                         f"(in, out) pairs of positive sizes, not {problem.layers!r}")
    if sum(i * o for i, o in layers) != problem.d:
        raise ValueError(f"problem '{problem.name}': the layers {layers} hold "
                         f"{sum(i * o for i, o in layers)} entries, d is {problem.d}")
    return layers


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.abs(b).max()) if b.size else 0.0, 1e-300)
    return float(np.abs(a - b).max() / scale) if a.size else 0.0


def check_problem(problem, theta=None, v=None, eps=1e-6, seed=0):
    """Collective over the problem's data communicator: check a Problem's derivatives by
    central finite differences, as examples/custom_problem.c does, at theta and v (default:
    what init gives, theta then moved off zero by a small random step).

    Returns a dict check -> relative error (max |a - b| / max |b|) on every rank alike:
    ``inner_grad`` (against its loss), ``reg_grad`` and ``reg_hdiag`` (against reg's value
    and gradient), ``eval_grad`` (against eval's loss on the validation rows), ``cross``
    (against the total inner gradient moved in v), and when defined ``hvp`` (against
    inner_grad), ``sample_grads`` (their weighted sum against inner_grad),
    ``layer_factors`` (sum_k c_k a_k g_k^T per layer against inner_grad),
    ``hess_factors`` (Z Z^T V against hvp), ``cross_apply`` (cross_apply of cross_keep's K
    over every row, scaled by 1/n, against cross for the same u) and ``cross_keep_after_grad``
    (K taken after inner_grad against K of a pass of its own, for rows that repeat). Differences
    of order eps^2 times the third derivatives are expected (1e-6 or less for smooth problems
    at eps = 1e-6); the last five are identities, exact to rounding.
    """
    data = problem.data
    comm = data.comm
    rng = np.random.default_rng(seed)  # the same stream on every rank: replicated directions
    d = problem.d
    n_local = data.train[0].shape[0]
    n_v = n_local * problem.v_per_sample if problem.v_per_sample else problem.p
    if theta is None or v is None:
        t0, v0 = np.zeros(d), np.zeros(n_v)
        problem.init(t0, v0)
        theta = t0 + 0.1 * rng.standard_normal(d) if theta is None else theta
        v = v0 if v is None else v
    theta, v = np.asarray(theta, dtype=np.float64), np.asarray(v, dtype=np.float64)
    rows = np.arange(n_local, dtype=np.intc)
    direction = rng.standard_normal(d)
    out = {}

    def loss(t):
        return problem.inner_grad(t, v, rows)[1]

    g, _ = problem.inner_grad(theta, v, rows)
    fd = (loss(theta + eps * direction) - loss(theta - eps * direction)) / (2 * eps)
    out["inner_grad"] = _rel(np.dot(g, direction), fd)

    value, rgrad, hdiag = problem.reg(theta, v)
    fd = (problem.reg(theta + eps * direction, v)[0] -
          problem.reg(theta - eps * direction, v)[0]) / (2 * eps)
    out["reg_grad"] = _rel(np.dot(rgrad, direction), fd)
    picks = rng.choice(d, size=min(d, 8), replace=False)
    fd_diag = []
    for k in picks:
        e = np.zeros(d)
        e[k] = eps
        fd_diag.append((problem.reg(theta + e, v)[1][k] - problem.reg(theta - e, v)[1][k]) /
                       (2 * eps))
    out["reg_hdiag"] = _rel(np.asarray(hdiag)[picks], fd_diag)

    X, y = data.val
    _, gval, _ = problem.eval(X, y, theta, v, True)
    fd = (problem.eval(X, y, theta + eps * direction, v, False)[0] -
          problem.eval(X, y, theta - eps * direction, v, False)[0]) / (2 * eps)
    out["eval_grad"] = _rel(np.dot(gval, direction), fd)

    # J^T u against d/dv of u . grad_theta g(v, theta), the inner gradient over every rank's
    # rows (divided by their count) plus grad_theta R.
    n_global = data.rows("train")[0]
    u = rng.standard_normal(d)
    e_v = rng.standard_normal(n_v)

    def u_dot_grad(vv):
        gi = comm.allreduce(problem.inner_grad(theta, vv, rows)[0]) / n_global
        return float(np.dot(u, gi + problem.reg(theta, vv)[1]))

    fd = (u_dot_grad(v + eps * e_v) - u_dot_grad(v - eps * e_v)) / (2 * eps)
    jt = float(np.dot(problem.cross(theta, v, u), e_v))
    if problem.v_per_sample:
        jt = comm.allreduce(jt)
    out["cross"] = _rel(jt, fd)

    if _has(problem, "hvp"):
        hv = problem.hvp(theta, v, rows, direction)
        fd = (problem.inner_grad(theta + eps * direction, v, rows)[0] -
              problem.inner_grad(theta - eps * direction, v, rows)[0]) / (2 * eps)
        out["hvp"] = _rel(hv, fd)
    if _has(problem, "sample_grads"):
        S, c = problem.sample_grads(theta, v, rows)
        out["sample_grads"] = _rel(np.asarray(c) @ np.asarray(S), g)
    if _has(problem, "layer_factors"):
        out["layer_factors"] = _rel(_from_layers(problem, rows, theta, v), g)
    if _has(problem, "hess_factors") and _has(problem, "hvp"):
        Z = np.asarray(problem.hess_factors(theta, v, rows))
        out["hess_factors"] = _rel(Z.T @ (Z @ direction), problem.hvp(theta, v, rows, direction))
    if _has(problem, "cross_keep") and _has(problem, "cross_apply"):
        out.update(_check_cross_terms(problem, theta, v, u, rows, n_global))
    # The same verdict everywhere: the worst rank's error of each check.
    return {k: comm.allreduce(val, op=MPI.MAX) for k, val in out.items()}


def _check_cross_terms(problem, theta, v, u, rows, n_global):
    """The sampled cross term over every row once (scale 1/n) against cross, and K after
    inner_grad against K of its own pass."""
    w = int(problem.v_per_sample)
    K = problem.cross_keep(theta, v, rows, False)
    q = np.asarray(problem.cross_apply(v, u, rows, K), dtype=np.float64).reshape(len(rows), w)
    total = np.zeros(v.shape[0])
    _add_rows(total, rows, q, np.full(len(rows), 1.0 / n_global), w)
    some = np.concatenate([rows[::-2], rows[:1]])  # a part of the rows, one of them twice
    problem.inner_grad(theta, v, rows)
    again = problem.cross_keep(theta, v, some, True)
    return {"cross_apply": _rel(total, problem.cross(theta, v, u)),
            "cross_keep_after_grad": _rel(again, problem.cross_keep(theta, v, some, False))}


def _from_layers(problem, rows, theta, v):
    """sum_k c_k vec(a_k g_k^T) over the rows, layer by layer in theta's layout (what the
    inner gradient must be)."""
    a, g, c = problem.layer_factors(theta, v, rows, False)
    c = np.asarray(c, dtype=np.float64)
    return np.concatenate([(np.asarray(al).T @ (c[:, None] * np.asarray(gl))).T.ravel()
                           for al, gl in zip(a, g)])
