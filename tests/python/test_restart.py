"""Stop and resume from Python equals an uninterrupted run bit for bit: a stop by halt_after
inside an inner loop, by nhgd.request_stop() from the progress callback between outer steps,
by a signal whose Python handler calls nhgd.request_stop() (sent by rank 0 to itself), and by
a timer's signal handled in C (nhgd.stop_on_signals).
Each stopped run returns a Result with stopped set; solve again with the same options
continues from the checkpoint. Run under mpirun at any rank count; exit 0 when all pass."""
import os
import signal

import numpy as np
from mpi4py import MPI

import nhgd
from checks import Checks

comm = MPI.COMM_WORLD
rank = comm.rank
checks = Checks("restart")
report = checks.report
work = checks.work
path = os.path.join(work, "small.h5")
nhgd.data_fashion_mnist(path, n_train=600, n_val=200)
data = nhgd.load(path)
base = nhgd.Options(problem="hyperclean", estimator="nhgd", outer_steps=5, inner_steps=6,
                    batch=16, inner_lr=0.5, log_level=0)


def same(a, b):
    """Bit-identical results: theta, the whole v, u and the history's values."""
    pairs = [(a.theta, b.theta), (a.gather_v(), b.gather_v()), (a.u, b.u)]
    pairs += [(a.history[c], b.history[c]) for c in ("val_loss", "hypergrad_norm", "samples")]
    return all(x.shape == y.shape and x.tobytes() == y.tobytes() for x, y in pairs)


reference = nhgd.solve(data, options=base)
report("uninterrupted run", reference.steps == 5 and not reference.stopped)


def resumed(label, stop, **first):
    """Stop a checkpointed run as first/stop say, continue it, compare with the reference."""
    ckpt = os.path.join(work, label.replace(" ", "_"))
    a = nhgd.solve(data, options=base, checkpoint_dir=ckpt, progress=stop, **first)
    b = nhgd.solve(data, options=base, checkpoint_dir=ckpt)
    tail = {c: np.concatenate([a.history[c], b.history[c]]) for c in a.history}
    steps_ok = list(tail["step"]) == list(range(5))
    ok = a.stopped and not b.stopped and b.resumed and b.steps == 5 and steps_ok
    # The history of the two calls together is the reference's (the step of the stop, when
    # inside an inner loop, is reported once, by the run that finishes it).
    b.history = {c: tail[c] for c in tail}
    report(label, ok and same(reference, b),
           f"stopped after {a.steps} outer steps, resumed to {b.steps}")


# Inside the third outer step's inner loop (halt_after counts inner steps).
resumed("halt_after", None, halt_after=14)


def stop_after_step1(step):
    if step["step"] == 1:
        nhgd.request_stop()


resumed("request_stop from progress", stop_after_step1)

# A Python signal handler: it runs in the main thread when the engine next calls into Python.
previous = signal.signal(signal.SIGUSR1, lambda signum, frame: nhgd.request_stop())


def signal_after_step2(step):
    if step["step"] == 2 and rank == 0:
        os.kill(os.getpid(), signal.SIGUSR1)


resumed("SIGUSR1 to rank 0, handled in Python", signal_after_step2)
signal.signal(signal.SIGUSR1, previous)

# A signal handled in C (nhgd.stop_on_signals) stops the run while no Python runs: SIGALRM
# from a timer on rank 0 ends a run given far more outer steps than it can finish; it is
# continued two outer steps past the stop and compared with an uninterrupted run that long.
ckpt = os.path.join(work, "alarm")
nhgd.stop_on_signals(signal.SIGALRM)
if rank == 0:
    signal.setitimer(signal.ITIMER_REAL, 0.3)
a = nhgd.solve(data, options=base, checkpoint_dir=ckpt, outer_steps=10**8, checkpoint_every=0)
signal.setitimer(signal.ITIMER_REAL, 0)
signal.signal(signal.SIGALRM, signal.SIG_DFL)
K = a.steps + 2
b = nhgd.solve(data, options=base, checkpoint_dir=ckpt, outer_steps=K)
longer = nhgd.solve(data, options=base, outer_steps=K)
b.history = {c: np.concatenate([a.history[c], b.history[c]]) for c in a.history}
report("SIGALRM to rank 0, handled in C", a.stopped and b.resumed and b.steps == K and
       list(b.history["step"]) == list(range(K)) and same(longer, b),
       f"stopped after {a.steps} outer steps, resumed to {K}")
data.close()
checks.exit()
