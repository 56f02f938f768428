"""nhgd: natural hypergradient descent for stochastic bilevel problems on MPI, from Python.

A client of libnhgd's public C API (include/nhgd/) like the ``nhgd`` program: run one
interpreter per rank under mpirun, load each rank's shard of an input file, solve, and get
numpy arrays back::

    from mpi4py import MPI
    import nhgd

    data = nhgd.load("run/fashion_mnist.h5")
    opts = nhgd.Options.from_file("jobs/hyperclean_fmnist.cfg")
    result = nhgd.solve(data, options=opts, outer_steps=10)
    print(result.test_accuracy)

Problems may be written in numpy (a subclass of :class:`Problem`) or come from a PyTorch model
(``import nhgd.torch``: :class:`nhgd.torch.TorchProblem`, which needs PyTorch).

Functions that take a communicator are collective over it: call them on every rank with the
same arguments. Every failure in them, on any rank, raises :class:`Error` on every rank with
the same message and status.
"""
import os

from mpi4py import MPI  # initialises MPI (and loads libmpi globally) before the extension
import numpy as np

from ._nhgd_ffi import ffi, lib
from . import _problem
from ._problem import Problem, check_problem

__all__ = ["Error", "Options", "Data", "Problem", "Result", "load", "solve", "hypergradient",
           "request_stop", "stop_on_signals", "data_fashion_mnist", "check_problem",
           "HISTORY_COLUMNS"]

#: Status of a run that wrote a checkpoint and stopped on request (not an error).
STOPPED = lib.NHGD_STOPPED


class Error(Exception):
    """An error of libnhgd, or of the package's own checks, as the library reports it.

    Attributes: ``message`` (the library's message, the one the ``nhgd`` program prints),
    ``status`` (the ``nhgd_status`` code: 1 invalid argument, 3 I/O, 4 data, ...) and
    ``reason`` (the short name of the status).
    """

    def __init__(self, message, status):
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = _text(lib.nhgd_strerror(status))


def _text(p):
    return ffi.string(p).decode(errors="replace") if p != ffi.NULL else ""


def _fail(status, message):
    """Record an error the package found in the library's error record (so that it crosses
    ranks like the library's own) and raise it."""
    lib.nhgd_error_clear()
    lib.pynhgd_error_set(status, message.encode())
    raise Error(message, status)


def _check(rc):
    """Raise the recorded error when rc is a failure status."""
    if rc:
        err = Error(_text(lib.nhgd_error_message()), rc)
        lib.nhgd_error_clear()
        raise err


def _local(fn, *args):
    """Run fn on this rank alone; the status of its failure (the message stays recorded)."""
    try:
        fn(*args)
    except Error as e:
        lib.nhgd_error_clear()
        lib.pynhgd_error_set(e.status, e.message.encode())
        return e.status
    return 0


def _comm_address(comm):
    """The address of comm's MPI_Comm handle (mpi4py 3.1: MPI._addressof), valid while comm
    lives."""
    if not isinstance(comm, MPI.Comm):
        _fail(lib.NHGD_ERR_ARG, f"comm: an mpi4py communicator is needed, not {type(comm)!r}")
    return ffi.cast("MPI_Comm *", MPI._addressof(comm))


def _same_everywhere(what, mine, first, rank):
    if mine != first:
        _fail(lib.NHGD_ERR_ARG, f"{what}: rank {rank} gave {mine!r}, rank 0 {first!r}: every "
              "rank must give the same")


def _agree(comm, status):
    """Collective: every rank raises the same Error when some rank's status is a failure."""
    _check(lib.pynhgd_error_agree(_comm_address(comm), status))


def request_stop():
    """Ask the running solver to write a checkpoint and stop at its next inner step (only with
    ``checkpoint_dir``; a request on any rank counts). Not collective.

    It only sets a flag, so a Python signal handler may call it, e.g.
    ``signal.signal(signal.SIGUSR1, lambda *_: nhgd.request_stop())``. Python runs its signal
    handlers between bytecodes of the main thread: while the engine computes in C, a handler
    runs when the engine next calls into Python, which :func:`solve` does after every outer
    step. The run then returns a :class:`Result` with ``stopped`` set; calling :func:`solve`
    again with the same options continues it bit for bit.
    """
    lib.nhgd_request_stop()


def stop_on_signals(*signums):
    """Not collective: from now on each of these signals (default: SIGUSR1 and SIGTERM) asks
    the running solver for a checkpoint and a stop at its next inner step, as the ``nhgd``
    program does (only with ``checkpoint_dir``; a signal on any rank counts).

    The handler is C code, so it acts while the engine computes; a Python handler calling
    :func:`request_stop` waits until the engine next calls into Python (after an outer step).
    It replaces the Python handlers of these signals (``signal.signal`` puts one back).
    """
    import signal

    for signum in signums or (signal.SIGUSR1, signal.SIGTERM):
        if lib.pynhgd_stop_on_signal(int(signum)) != 0:
            _fail(lib.NHGD_ERR_ARG, f"stop_on_signals: cannot handle signal {int(signum)}: "
                  f"{os.strerror(ffi.errno)}")


# ---- options ----------------------------------------------------------------------------


def _option_name(key):
    return key.replace("_", "-")


def _option_text(name, value):
    """The text the command line would give for value, or an Error for a value of no option
    type."""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # repr round-trips: the option holds the same double
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    _fail(lib.NHGD_ERR_ARG, f"option --{name}: a value of type {type(value).__name__} is "
          "not an option value (give a number, a bool or a string)")


@ffi.def_extern()
def pynhgd_on_option(name, value, flags, arg):
    ffi.from_handle(arg).append((_text(name), _text(value)))


class Options:
    """The options of a run: those of ``nhgd run`` (see ``nhgd --help`` or docs/options.md),
    named as on the command line with underscores for dashes, at their defaults unless given.

    ``Options(outer_steps=10, estimator="cg")``. Values may be numbers, bools or strings (the
    text the command line would take). An unknown name or a value the option does not take
    raises :class:`Error` with the library's message. Not collective: the same arguments give
    the same result on every rank. ``data``, ``output`` and ``metrics`` are the ``nhgd``
    program's own options: in Python the data is the argument of :func:`solve`, and the output
    and metrics files are its ``output`` and ``metrics`` arguments.
    """

    def __init__(self, **values):
        p = ffi.new("nhgd_options **")
        lib.nhgd_error_clear()
        _check(lib.nhgd_options_create_run(p))
        self._ptr = ffi.gc(p, lib.nhgd_options_destroy)
        self.update(**values)

    @classmethod
    def from_file(cls, path):
        """Options from a configuration file of ``name = value`` lines (what ``--config`` reads),
        the rest at their defaults. The environment is not read. Not collective."""
        o = cls()
        argv_keep = [ffi.new("char[]", b"--config"), ffi.new("char[]", os.fsencode(path))]
        argv = ffi.new("char *[]", argv_keep)
        help_flag = ffi.new("int *")
        lib.nhgd_error_clear()
        _check(lib.nhgd_options_parse(o._handle, 2, argv, ffi.NULL, help_flag))
        return o

    @property
    def _handle(self):
        return self._ptr[0]

    def set(self, name, value, source=None):
        """Set one option (``name`` with dashes or underscores). Not collective."""
        name = _option_name(name)
        text = _option_text(name, value)
        where = source or f"keyword {name.replace('-', '_')}"
        lib.nhgd_error_clear()
        _check(lib.nhgd_options_set(self._handle, name.encode(), text.encode(), where.encode()))

    def update(self, **values):
        """Set every option given as a keyword. Not collective."""
        for key, value in values.items():
            self.set(key, value)

    def copy(self):
        """A copy that changes independently. Not collective."""
        p = ffi.new("nhgd_options **")
        lib.nhgd_error_clear()
        _check(lib.nhgd_options_copy(self._handle, p))
        o = Options.__new__(Options)
        o._ptr = ffi.gc(p, lib.nhgd_options_destroy)
        return o

    def validate(self):
        """Check the options against each other (what a run checks first). Not collective."""
        lib.nhgd_error_clear()
        _check(lib.nhgd_options_validate(self._handle))

    def items(self):
        """Every option as (name, value as text) pairs, in the order of ``nhgd --help``."""
        out = []
        keep = ffi.new_handle(out)
        lib.nhgd_options_foreach(self._handle, lib.pynhgd_on_option, keep)
        return out

    def __getitem__(self, name):
        """The value of an option: int, float or str by its type (bools read as 0 or 1)."""
        name = _option_name(name).encode()
        i, x, s = ffi.new("int64_t *"), ffi.new("double *"), ffi.new("char **")
        for get, box, conv in ((lib.nhgd_options_get_int, i, lambda b: int(b[0])),
                               (lib.nhgd_options_get_real, x, lambda b: float(b[0])),
                               (lib.nhgd_options_get_string, s, lambda b: _text(b[0]))):
            lib.nhgd_error_clear()
            if get(self._handle, name, ffi.cast(ffi.typeof(box), box)) == 0:
                return conv(box)
        _check(lib.NHGD_ERR_ARG)

    def __setitem__(self, name, value):
        self.set(name, value)

    def is_default(self, name):
        """Whether the option holds its default value."""
        flag = ffi.new("int *")
        lib.nhgd_error_clear()
        _check(lib.nhgd_options_is_default(self._handle, _option_name(name).encode(), flag))
        return bool(flag[0])

    def __repr__(self):
        given = [f"{n.replace('-', '_')}={v!r}" for n, v in self.items()
                 if not self.is_default(n)]
        return f"nhgd.Options({', '.join(given)})"


# ---- data -------------------------------------------------------------------------------


class Data:
    """The rows of an input file that this rank owns (train, val and, when present, test).

    Made by :func:`load`. ``train``, ``val`` and ``test`` are ``(X, y)`` pairs of numpy arrays
    that view the library's memory (no copy; read-only, alive as long as this object): X is
    ``n_local x m`` float64, y int32 class labels or float64 targets. ``lo`` of a split is the
    global index of its first local row. ``close()`` (collective) frees the data; the garbage
    collector does it otherwise.
    """

    def __init__(self, ptr, comm, arrays=None):
        self._ptr = ptr
        self.comm = comm
        # Data built from arrays: the struct and arrays are Python's, the communicator a
        # duplicate this object frees; loaded data is the library's to free.
        self._arrays = arrays

    @property
    def _handle(self):
        if self._ptr is None or self._ptr[0] == ffi.NULL:
            _fail(lib.NHGD_ERR_ARG, "the data is closed")
        return self._ptr[0]

    def close(self):
        """Collective: free the data now."""
        if self._ptr is not None and not MPI.Is_finalized():
            if self._arrays is None:
                lib.nhgd_data_destroy(self._ptr)
            else:
                self._arrays["comm"].Free()
        self._ptr = None

    def __del__(self):
        if getattr(self, "_ptr", None) is not None:
            self.close()

    @classmethod
    def from_arrays(cls, train, val, test=None, comm=None, root=0, n_classes=None):
        """Collective over comm (default MPI.COMM_WORLD): data from numpy arrays, without a file.

        ``train``, ``val`` and ``test`` (optional) are ``(X, y)`` pairs: X ``n x m`` (any real
        type, held as float64), y integer class labels (a classification task, with
        ``n_classes`` classes, default the largest label + 1) or real targets (regression).

        ``root=0`` (the default): rank root passes every row and the other ranks pass None for
        the splits (``train=None, val=None``); each rank receives its block of rows as
        :func:`load` would give it. ``root=None``: every rank passes its own block, which must
        be the rows ``load`` would give it (rank r of P: ``n // P`` rows, one more for
        ``r < n % P``, in rank order).

        The arrays are checked as :func:`load` checks a file (shapes, equal feature counts,
        finite values, labels in range, at least as many rows as ranks in every split); a
        failure on any rank raises :class:`Error` on every rank. The data lives in Python
        memory (copies of the given arrays) and has no path.
        """
        comm = MPI.COMM_WORLD if comm is None else comm
        _comm_address(comm)  # an mpi4py communicator, or the same Error on every rank
        lib.nhgd_error_clear()
        names = ("train", "val", "test")
        given = (train, val, test)
        if root is not None:
            local = [None] * 3
            status = _local(lambda: local.__setitem__(slice(None), _split_arrays(given, names))
                            ) if comm.rank == root else 0
            _agree(comm, status)
            has_test = comm.bcast(test is not None if comm.rank == root else None, root=root)
            parts = [_scatter_rows(comm, root, local[i]) if i < 2 or has_test else None
                     for i in range(3)]
        else:
            box = []
            _agree(comm, _local(lambda: box.extend(_split_arrays(given, names))))
            parts = box
            has_test = test is not None
            _agree(comm, 0 if comm.allreduce(int(has_test)) in (0, comm.size) else
                   _local(_fail, lib.NHGD_ERR_ARG, "from_arrays: some ranks pass test rows and "
                          "some do not"))
        # The class count of the root, or, with rows from every rank, one they all give.
        first = comm.bcast(n_classes, root=0 if root is None else root)
        if root is None:
            _agree(comm, _local(_same_everywhere, "n_classes", n_classes, first, comm.rank))
        box = []
        _agree(comm, _local(lambda: box.append(_check_blocks(comm, parts, names, first))))
        classes = box[0]
        d = ffi.new("nhgd_data *")
        dup = comm.Dup()
        lib.pynhgd_data_set_comm(d, _comm_address(dup))
        d.rank, d.size, d.m = comm.rank, comm.size, parts[0][0].shape[1]
        d.task = lib.NHGD_TASK_CLASSIFICATION if classes else lib.NHGD_TASK_REGRESSION
        d.n_classes, d.has_test = classes, int(has_test)
        for name, part in zip(names, parts):
            if part is None:
                continue
            X, y = part
            sp = getattr(d, name)
            sp.n_global = comm.allreduce(X.shape[0])
            sp.lo = comm.exscan(X.shape[0]) or 0
            sp.n_local, sp.m = X.shape
            sp.X = ffi.from_buffer("double[]", X)
            if classes:
                sp.y_class = ffi.from_buffer("int32_t[]", y)
            else:
                sp.y_real = ffi.from_buffer("double[]", y)
        ptr = ffi.new("nhgd_data **", d)
        return cls(ptr, comm, arrays={"struct": d, "parts": parts, "comm": dup})

    def _split(self, s):
        n, m = s.n_local, s.m
        if n == 0:
            return np.zeros((0, m)), np.zeros(0)
        X = np.frombuffer(ffi.buffer(s.X, n * m * 8), dtype=np.float64).reshape(n, m)
        if s.y_class != ffi.NULL:
            y = np.frombuffer(ffi.buffer(s.y_class, n * 4), dtype=np.int32)
        else:
            y = np.frombuffer(ffi.buffer(s.y_real, n * 8), dtype=np.float64)
        return X, y

    @property
    def train(self):
        """This rank's training rows (X, y)."""
        return self._split(self._handle.train)

    @property
    def val(self):
        """This rank's validation rows (X, y)."""
        return self._split(self._handle.val)

    @property
    def test(self):
        """This rank's test rows (X, y), or None when the file has no test split."""
        return self._split(self._handle.test) if self._handle.has_test else None

    @property
    def path(self):
        """The file the data came from."""
        return _text(self._handle.path)

    @property
    def n_classes(self):
        """Classes of a classification task; 0 for regression."""
        return self._handle.n_classes

    @property
    def features(self):
        """Features per row (m)."""
        return self._handle.m

    def rows(self, split="train"):
        """(n_global, lo, n_local) of a split: its rows in the file, the global index of this
        rank's first row, and this rank's rows."""
        s = getattr(self._handle, split)
        return s.n_global, s.lo, s.n_local

    def __repr__(self):
        d = self._handle
        return (f"nhgd.Data({self.path!r}: {d.train.n_global} train, {d.val.n_global} val, "
                f"{d.test.n_global if d.has_test else 0} test rows, {d.m} features, "
                f"rank {d.rank} of {d.size})")


def _split_arrays(given, names):
    """The splits as C-contiguous float64 X and int32 labels or float64 targets (train and
    val required)."""
    out = []
    for name, pair in zip(names, given):
        if pair is None:
            if name != "test":
                _fail(lib.NHGD_ERR_ARG, f"from_arrays: the {name} split is required")
            out.append(None)
            continue
        try:
            X, y = pair
        except (TypeError, ValueError):
            _fail(lib.NHGD_ERR_ARG, f"from_arrays: {name} must be a pair (X, y)")
        X, y = np.asarray(X), np.asarray(y)
        if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
            _fail(lib.NHGD_ERR_DATA, f"from_arrays: {name}: X must be n x m and y hold n "
                  f"entries, got X {X.shape} and y {y.shape}")
        if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
            _fail(lib.NHGD_ERR_DATA, f"from_arrays: {name}: X and y must hold numbers")
        X = np.ascontiguousarray(X, dtype=np.float64)
        if y.dtype.kind in "biu":
            if y.size and (y.min() < 0 or y.max() > np.iinfo(np.int32).max):
                _fail(lib.NHGD_ERR_DATA, f"from_arrays: {name}: class labels must be in "
                      f"0..{np.iinfo(np.int32).max}")
            y = np.ascontiguousarray(y, dtype=np.int32)
        else:
            y = np.ascontiguousarray(y, dtype=np.float64)
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            _fail(lib.NHGD_ERR_DATA, f"from_arrays: {name}: X and y must be finite")
        out.append((X, y))
    kinds = {p[1].dtype for p in out if p is not None}
    if len(kinds) > 1:
        _fail(lib.NHGD_ERR_DATA, "from_arrays: the splits mix class labels and real targets")
    return out


def _scatter_rows(comm, root, part):
    """Rank root's (X, y) split among the ranks in the library's partition."""
    meta = comm.bcast((part[0].shape, part[1].dtype.str) if comm.rank == root else None,
                      root=root)
    (n, m), ydtype = meta
    lo_n = [(ffi.new("int64_t *"), ffi.new("int64_t *")) for _ in range(comm.size)]
    for r, (lo, cnt) in enumerate(lo_n):
        lib.nhgd_partition(n, comm.size, r, lo, cnt)
    counts = [int(c[0]) for _, c in lo_n]
    starts = [int(lo[0]) for lo, _ in lo_n]
    X = np.empty((counts[comm.rank], m))
    y = np.empty(counts[comm.rank], dtype=np.dtype(ydtype))
    sendX = [part[0], ([c * m for c in counts], [s * m for s in starts]), MPI.DOUBLE] \
        if comm.rank == root else None
    comm.Scatterv(sendX, X, root=root)
    sendy = [part[1], (counts, starts), MPI._typedict[y.dtype.char]] \
        if comm.rank == root else None
    comm.Scatterv(sendy, y, root=root)
    return X, y


def _check_blocks(comm, parts, names, n_classes):
    """What the loader checks of a file, for rows given by the ranks (collective: every rank
    runs the same reductions before any may fail); the number of classes (0: regression)."""
    ms = comm.allgather([p[0].shape[1] if p is not None else -1 for p in parts])
    kinds = comm.allgather(parts[0][1].dtype.kind)
    problems = []
    if len(set(kinds)) > 1:
        problems.append("the ranks mix class labels and real targets")
    if len({m for row in ms for m in row if m >= 0}) > 1:
        problems.append(f"the feature counts differ between splits or ranks: {ms}")
    for name, part in zip(names, parts):
        if part is None:
            continue
        n_local = part[0].shape[0]
        counts = comm.allgather(n_local)
        n = sum(counts)
        lo, cnt = ffi.new("int64_t *"), ffi.new("int64_t *")
        for r in range(comm.size):
            lib.nhgd_partition(n, comm.size, r, lo, cnt)
            if counts[r] != cnt[0]:
                problems.append(f"{name}: rank {r} holds {counts[r]} of {n} rows, the partition "
                                f"gives it {cnt[0]}")
                break
        if n < comm.size:
            problems.append(f"{name}: {n} rows for {comm.size} ranks (at least one row each)")
    classes = 0
    if kinds[0] in "biu":
        top = comm.allreduce(max((int(p[1].max()) for p in parts
                                  if p is not None and p[1].size), default=-1), op=MPI.MAX)
        classes = n_classes if n_classes is not None else top + 1
        if top >= classes:
            problems.append(f"label {top} is outside 0..{classes - 1}")
    if problems:
        _fail(lib.NHGD_ERR_DATA, "from_arrays: " + "; ".join(problems))
    return classes


def load(path, comm=None):
    """Collective over comm (default MPI.COMM_WORLD): read the rows of the input file path that
    this rank owns (rank r of P owns a contiguous block of each split; the first n % P ranks
    one row more). The file is checked as ``nhgd run`` checks it; a bad file raises
    :class:`Error` on every rank. Returns a :class:`Data`."""
    comm = MPI.COMM_WORLD if comm is None else comm
    p = ffi.new("nhgd_data **")
    address = _comm_address(comm)
    lib.nhgd_error_clear()
    # The reads are collective with one file name: a name that differs between ranks would
    # hang them, so it is refused on every rank first.
    name = os.fsencode(path)
    first = comm.bcast(name, root=0)
    _agree(comm, _local(_same_everywhere, "path", os.fsdecode(name), os.fsdecode(first),
                        comm.rank))
    _check(lib.pynhgd_data_load(address, name, p))
    return Data(p, comm)


# ---- solving ----------------------------------------------------------------------------

#: The columns of a run's history, as in the output file's /history (docs/usage.md).
HISTORY_COLUMNS = ("step", "val_loss", "val_acc", "test_loss", "test_acc", "inner_loss",
                   "hypergrad_norm", "wall_time", "samples", "val_rows", "val_loss_full",
                   "solver_time", "eval_time")
_INT_COLUMNS = ("step", "val_rows")

__version__ = _text(lib.pynhgd_version()).split()[0]


class Result:
    """What :func:`solve` and :func:`hypergradient` return (numpy arrays are copies).

    - ``theta``: the inner parameters (d entries, equal on every rank).
    - ``v``: this rank's outer parameters: all p of them, or, for a problem with per-row v
      (hyperclean), the entries of the training rows this rank owns (see ``gather_v``).
    - ``u``: the last solution of the linear system (d entries); ``hypergradient``: the last
      hypergradient (same layout as ``v``).
    - ``history``: dict of numpy arrays, one per column of HISTORY_COLUMNS, a row per outer
      step this call ran (a resumed run's earlier steps are in its output file).
    - ``timings``: dict stage -> (min, avg, max) seconds over the ranks.
    - ``steps`` (outer steps done, counting a resumed run's earlier ones), ``resumed``,
      ``stopped`` (checkpointed and stopped on request: call again to continue),
      ``val_loss`` and ``test_accuracy`` of the last outer step (NaN when not evaluated),
      ``output`` (the file written, or None).
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def gather_v(self, root=None):
        """Collective over the communicator of the run: the whole v, concatenated over the
        ranks in rank order (the global layout of per-row v), on every rank or on root only
        (None elsewhere). For replicated v it is ``v`` itself."""
        if not self.v_per_sample:
            return self.v
        if root is None:
            return np.concatenate(self._comm.allgather(self.v))
        parts = self._comm.gather(self.v, root=root)
        return np.concatenate(parts) if parts is not None else None

    def __repr__(self):
        return (f"nhgd.Result(steps={self.steps}, val_loss={self.val_loss:.6g}, "
                f"test_accuracy={self.test_accuracy:.4f}, stopped={self.stopped})")


class _Run:
    """What the progress callback collects during one call of solve."""

    def __init__(self, progress):
        self.progress = progress
        self.metrics = None  # the nhgd_metrics handle while a metrics file is written
        self.columns = {c: [] for c in HISTORY_COLUMNS}
        self.error = None
        self.error_step = None


@ffi.def_extern()
def pynhgd_on_progress(p, arg):
    run = ffi.from_handle(arg)
    record = {c: getattr(p, c) for c in HISTORY_COLUMNS}
    for c in HISTORY_COLUMNS:
        run.columns[c].append(record[c])
    if run.metrics is not None:
        lib.nhgd_metrics_progress(p, run.metrics)
    if run.progress is None or run.error is not None:
        return
    try:
        run.progress(record)
    except BaseException as e:  # noqa: B036 (KeyboardInterrupt too: it must not unwind C)
        run.error, run.error_step = e, record["step"]
        # With checkpoints the run stops at its next inner step (a request on any rank counts).
        lib.nhgd_request_stop()


def _copy(ptr, n):
    if ptr == ffi.NULL or n <= 0:
        return np.zeros(0)
    return np.frombuffer(ffi.buffer(ptr, n * 8), dtype=np.float64).copy()


def _timings(s):
    n = ffi.new("int *")
    _check(lib.nhgd_solver_timing(s, n, ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL))
    k = n[0]
    names = ffi.new("const char *[]", k)
    mn, avg, mx = ffi.new("double[]", k), ffi.new("double[]", k), ffi.new("double[]", k)
    _check(lib.nhgd_solver_timing(s, n, names, mn, avg, mx))
    return {_text(names[i]): (mn[i], avg[i], mx[i]) for i in range(k)}


def _build_options(options, problem, values):
    if options is not None and not isinstance(options, Options):
        _fail(lib.NHGD_ERR_ARG, f"options: an nhgd.Options is needed, not {type(options)!r}")
    o = options.copy() if options is not None else Options()
    if problem is not None and not isinstance(problem, Problem):
        o.set("problem", problem, "argument problem")
    o.update(**values)
    o.validate()
    return o


def _check_launch(o, comm, data):
    # The solver needs the data's ranks in the data's order.
    if not lib.pynhgd_same_ranks(_comm_address(comm), data._handle):
        _fail(lib.NHGD_ERR_ARG, "comm: not the ranks (in the same order) the data was loaded on")
    # As in the program: a process grid that cannot fit the launch is a usage error.
    rows, size = o["grid_rows"], comm.Get_size()
    if rows > 0 and (rows > size or size % rows != 0):
        _fail(lib.NHGD_ERR_ARG,
              f"option --grid-rows: {rows} does not divide the number of ranks ({size})")


def _check_paths(o, data, output, metrics):
    """No file the run writes is one it reads or another it writes (rank 0 looks)."""
    restart = o["restart"]
    specs = [("--data", data.path, lib.NHGD_PATH_READ),
             ("--v-from", o["v_from"], lib.NHGD_PATH_READ),
             ("--restart", restart if restart not in ("auto", "never") else "",
              lib.NHGD_PATH_READ),
             ("output", os.fspath(output) if output else "", lib.NHGD_PATH_WRITE),
             ("metrics", os.fspath(metrics) if metrics else "", lib.NHGD_PATH_APPEND),
             ("--checkpoint-dir", o["checkpoint_dir"], lib.NHGD_PATH_FOLDER)]
    keep = [(ffi.new("char[]", a.encode()), ffi.new("char[]", os.fsencode(b))) for a, b, _ in specs]
    paths = ffi.new("nhgd_path[]", len(specs))
    for i, (_, _, use) in enumerate(specs):
        paths[i].option, paths[i].path, paths[i].use = keep[i][0], keep[i][1], use
    _check(lib.nhgd_paths_check(paths, len(specs)))


def _solve(mode, data, problem, comm, progress, output, metrics, options, values):
    if not isinstance(data, Data):
        _fail(lib.NHGD_ERR_ARG, f"data: an nhgd.Data is needed (nhgd.load), not {type(data)!r}")
    comm = data.comm if comm is None else comm
    address = _comm_address(comm)
    lib.nhgd_error_clear()
    # Everything checked on each rank alone is agreed before the next collective step, so a
    # failure on some ranks (an argument that differs between them) raises on all.
    box = []
    _agree(comm, _local(lambda: box.append(_build_options(options, problem, values))))
    o = box[0]
    _agree(comm, _local(_check_launch, o, comm, data))
    lib.pynhgd_log_init(address, o["log_level"])
    _agree(comm, _local(_check_paths, o, data, output, metrics) if comm.Get_rank() == 0 else 0)
    out = os.fsencode(output) if output else None
    if out is not None:
        _check(lib.pynhgd_output_check(address, out))
    ckpt = os.fsencode(o["checkpoint_dir"])
    if ckpt:
        _check(lib.pynhgd_checkpoint_folder_lock(address, ckpt))
    pb, s = ffi.new("nhgd_problem **"), ffi.new("nhgd_solver **")
    mf = ffi.new("nhgd_metrics **")
    run = _Run(progress)
    handle = ffi.new_handle(run)
    handle_pb = ffi.new_handle(problem)
    try:
        if isinstance(problem, Problem):
            _agree(comm, 0 if problem.data is data else _local(
                _fail, lib.NHGD_ERR_ARG, "problem: made for other data than the data given"))
            rc, pb = _problem.create(problem, data._handle, handle_pb)
            _agree(comm, rc)
        else:
            _agree(comm, lib.nhgd_problem_create_from_options(o._handle, data._handle, pb))
        _agree(comm, lib.nhgd_solver_check_data(o._handle, pb[0]))
        _check(lib.pynhgd_solver_create(address, o._handle, data._handle, pb[0], s))
        lib.nhgd_solver_set_progress(s[0], lib.pynhgd_on_progress, handle)
        if metrics:
            _check(lib.nhgd_metrics_open(s[0], os.fsencode(metrics), mf))
            run.metrics = mf[0]
            lib.nhgd_solver_set_rollback(s[0], ffi.addressof(lib, "nhgd_metrics_rollback"), mf[0])
        rc = lib.nhgd_solver_run(s[0]) if mode == "run" else lib.nhgd_solver_hypergrad(s[0])
        stopped = rc == lib.NHGD_STOPPED
        if stopped:
            # The request is honoured: a later call in this process continues the run.
            lib.nhgd_clear_stop_request()
            lib.nhgd_error_clear()
            rc = 0
        _check(rc)
        if out is not None:
            _check(lib.nhgd_solver_write(s[0], out))
        _check(lib.nhgd_solver_report(s[0]))
        timings = _timings(s[0])
        if run.metrics is not None:
            # The timing line, then the file's verdict: a line that could not be written (a
            # full disk) is an error naming the file, after the stop it requested.
            _check(lib.nhgd_metrics_timing(run.metrics, s[0]))
            run.metrics = None
            _check(lib.nhgd_metrics_close(mf, ckpt))
        # A progress callback that raised on some rank fails the call on every rank.
        status = 0
        if run.error is not None:
            e = run.error
            after = "; the run stopped after a checkpoint" if stopped else ""
            status = _local(_fail, lib.NHGD_ERR_ARG,
                            f"the progress callback raised {type(e).__name__}: {e} (at outer step "
                            f"{run.error_step}{after})")
        try:
            _agree(comm, status)
        except Error as agreed:
            raise agreed from run.error
        n_v = lib.nhgd_solver_v_local(s[0])
        theta_n = pb[0].d
        history = {c: np.array(run.columns[c], dtype=np.int64 if c in _INT_COLUMNS else np.float64)
                   for c in HISTORY_COLUMNS}
        return Result(
            theta=_copy(lib.nhgd_solver_theta(s[0]), theta_n),
            v=_copy(lib.nhgd_solver_v(s[0]), n_v),
            u=_copy(lib.nhgd_solver_u(s[0]), theta_n),
            hypergradient=_copy(lib.nhgd_solver_hypergradient(s[0]), n_v),
            history=history, timings=timings, steps=lib.nhgd_solver_outer_steps_done(s[0]),
            resumed=bool(lib.nhgd_solver_resumed(s[0])), stopped=stopped,
            val_loss=lib.nhgd_solver_val_loss(s[0]),
            test_accuracy=lib.nhgd_solver_test_accuracy(s[0]),
            output=os.fsdecode(out) if out is not None else None,
            problem=problem.name if isinstance(problem, Problem) else o["problem"],
            v_per_sample=pb[0].v_per_sample, options=o, _comm=comm)
    finally:
        if mf[0] != ffi.NULL:  # an error came first: it is the one raised
            lib.nhgd_metrics_close(mf, ckpt)
        lib.nhgd_solver_destroy(s)
        lib.nhgd_problem_destroy(pb)
        if ckpt:
            lib.pynhgd_checkpoint_folder_unlock(address, ckpt)


def solve(data, problem=None, comm=None, progress=None, output=None, metrics=None, options=None,
          **values):
    """Collective over comm: solve the bilevel problem on data (what ``nhgd run`` does).

    - ``data``: a :class:`Data` (:func:`load`); ``comm``: an mpi4py communicator with the
      data's ranks in the same order (default: the one the data was loaded on).
    - ``problem``: a built-in problem's name (``"hyperclean"``, ``"logreg"``, ...), or a
      :class:`Problem` made for this data; None keeps the options' ``problem``.
    - ``options``: an :class:`Options` to start from (e.g. ``Options.from_file(cfg)``); the
      keywords ``values`` then set options by name as :class:`Options` does, e.g.
      ``outer_steps=10, checkpoint_dir="ckpt"``. With ``checkpoint_dir`` the run continues
      from the folder's checkpoint (``restart``, ``checkpoint_every``, ``halt_after`` pass
      through as on the command line).
    - ``progress``: called on every rank after each outer step with the step's record (a dict
      of the HISTORY_COLUMNS). If it raises, the run goes on to its end (with
      ``checkpoint_dir``: stops after a checkpoint) and the call then raises :class:`Error`
      naming the exception on every rank.
    - ``output``: a path: write the file ``nhgd run --output`` writes.
    - ``metrics``: a path: write the JSON-lines file ``nhgd run --metrics`` writes (one line per
      outer step and rollback, then the timing table; a resumed run appends). A line that
      cannot be written (a full disk) stops the run after a checkpoint, with
      ``checkpoint_dir``, and raises :class:`Error` naming the file.

    Returns a :class:`Result`; one with ``stopped`` set when the run wrote a checkpoint and
    stopped on request (``halt_after``, :func:`request_stop`). Any failure raises
    :class:`Error` on every rank, with the same message and status.
    """
    return _solve("run", data, problem, comm, progress, output, metrics, options, values)


def hypergradient(data, problem=None, comm=None, output=None, metrics=None, options=None,
                  **values):
    """Collective over comm: one inner loop at the initial (or ``v_from``) v, then u and the
    hypergradient, no outer step (what ``nhgd hypergrad`` does). Arguments as :func:`solve`;
    the :class:`Result`'s ``hypergradient`` and ``u`` hold the answer."""
    return _solve("hypergrad", data, problem, comm, None, output, metrics, options, values)


# ---- input files ------------------------------------------------------------------------


def data_fashion_mnist(output, comm=None, **fields):
    """Collective over comm (default MPI.COMM_WORLD): write the Fashion-MNIST hyper-cleaning
    input file output (what ``nhgd data fashion-mnist`` writes; rank 0 writes it). ``fields``
    set the writer's settings by name: ``dir`` (the IDX files, default Debian's
    dataset-fashion-mnist), ``n_train``, ``n_val``, ``corruption``, ``seed``,
    ``standardize``. A failure raises :class:`Error` on every rank."""
    comm = MPI.COMM_WORLD if comm is None else comm

    def write():
        o = ffi.new("nhgd_fmnist_options *")
        lib.nhgd_fmnist_options_default(o)
        o.output = os.fsencode(output)
        for key, value in fields.items():
            if key not in ("dir", "n_train", "n_val", "corruption", "seed", "standardize"):
                _fail(lib.NHGD_ERR_ARG, f"data_fashion_mnist: unknown setting {key}")
            setattr(o, key, os.fsencode(value) if key == "dir" else value)
        lib.nhgd_error_clear()
        _check(lib.nhgd_data_fashion_mnist(o))

    _agree(comm, _local(write) if comm.Get_rank() == 0 else 0)
