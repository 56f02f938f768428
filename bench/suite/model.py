#!/usr/bin/env python3
"""The scaling model: time per outer step of inner SGD plus an estimator, fitted to the suite's
measurements on this machine and used to predict larger problems on a cluster.

usage: model.py RESULTS_DIR   (reads scaling.csv, comm.csv, dgemm.csv; writes model.csv and
model_assumptions.md)

Each stage of an outer step is work divided by a rate. The work counts follow the solver's own
cost model (src/estimators/nhgd/plan.c) and its stages (src/core/timer.c); the rates are fitted, one
per stage, to the measured stage times of the runs that do not oversubscribe the cores (the
median of measured time / work); communication is a latency plus bytes over a bandwidth per
collective, fitted to bench/comm_rate on this machine. The measured points are then predicted
from the fitted model (rows kind=fit) before the model predicts what was not measured (kind=
predict).
"""
import csv
import math
import os
import statistics
import sys
from collections import defaultdict

# Problem of the measured runs: the main job's hyper-cleaning on Fashion-MNIST.
M_FEAT, N_CLASS, N_VAL = 784, 10, 5000
T_INNER = 10  # inner steps per outer step in scaling.sh
HVP_STEPS = 10  # cg's --hvp-steps in scaling.sh
NBO_STEPS = 3  # nbo's --nbo-steps (its default); scaling.sh does not measure nbo yet

# Assumptions of the cluster prediction (stated in model_assumptions.md).
RANKS_PER_NODE = 32
NET_LATENCY = 2e-6  # seconds per message between nodes
NET_BANDWIDTH = 12.5e9  # bytes/s per node (100 Gb/s)
PREDICT_D = [7840, 20000, 50000, 100000]
PREDICT_NODES = [1, 4, 16, 64]
PREDICT_B, PREDICT_T, PREDICT_N_TRAIN = 256, 20, 20000
CHOL_EFF = 0.5  # the engine's assumed Cholesky efficiency relative to DGEMM (efim.c)


def read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def fit_comm(rows):
    """Latency and bandwidth per (op, ranks): the smallest message's time, and the slope of
    time against bytes over the messages of 128 kB and more."""
    by = defaultdict(list)
    for r in rows:
        by[(r["op"], int(r["ranks"]))].append((float(r["bytes"]), float(r["seconds"])))
    fit = {}
    for key, pts in by.items():
        pts.sort()
        lat = pts[0][1]
        big = [(b, t) for b, t in pts if b >= 131072]
        mb = statistics.mean(b for b, _ in big)
        mt = statistics.mean(t for _, t in big)
        slope = sum((b - mb) * (t - mt) for b, t in big) / sum((b - mb) ** 2 for b, _ in big)
        fit[key] = (lat, max(slope, 1e-12))
    return fit


class Machine:
    """Collectives: on one node, the fitted shared-memory costs (the 4-rank fit for 3 or more
    ranks); across nodes, a node-level ring over the assumed network after the node's ranks
    combine their parts in shared memory."""

    def __init__(self, comm, cores, nodes=1):
        self.comm, self.cores, self.nodes = comm, cores, nodes

    def _local(self, op, ranks, nbytes):
        if ranks <= 1:
            return 0.0
        lat, per_byte = self.comm[(op, 2 if ranks == 2 else 4)]
        return lat + nbytes * per_byte

    def allreduce(self, nbytes, ranks):
        n = self.nodes
        t = self._local("allreduce", min(ranks, RANKS_PER_NODE if n > 1 else ranks), nbytes)
        if n > 1:
            t += 2 * math.log2(n) * NET_LATENCY + 2 * (n - 1) / n * nbytes / NET_BANDWIDTH
        return t

    def allgather(self, nbytes, ranks):
        """nbytes: the whole gathered payload every rank receives."""
        n = self.nodes
        t = self._local("allgather", min(ranks, RANKS_PER_NODE if n > 1 else ranks), nbytes / n)
        if n > 1:
            t += math.log2(n) * NET_LATENCY + (n - 1) / n * nbytes / NET_BANDWIDTH
        return t


def work(case):
    """Work units per stage of one outer step (flops, or per-sample units), per rank, before
    division by the fitted rates. case: d, m, C, n_train, B, T, P, est, route, kron."""
    d, m, C, n, B, T, P = (case[k] for k in ("d", "m", "C", "n_train", "B", "T", "P"))
    N = T * B
    w = {}
    w["sgd"] = T * (B / P) * 4.0 * d  # per-sample gradients: forward and backward
    w["update"] = T * d  # the replicated step on theta
    w["hypergrad"] = (n / P) * 2.0 * d if case["per_sample_v"] else 2.0 * d
    w["eval"] = (N_VAL / P) * 4.0 * d
    est, route = case["est"], case["route"]
    if est == "cg":
        w["hvp"] = (HVP_STEPS + 1) * (case["hvp_batch"] / P) * 8.0 * d
    if est == "nbo":
        # The Newton gradient on the draw (4 d per row), then per step a product for each of
        # the two systems (cg: one more for u's start): docs/algorithm.md 5.2.
        rows = case["hvp_batch"] / P
        w["hvp"] = rows * 4.0 * d + (2 * NBO_STEPS + 1) * rows * 8.0 * d
    if case.get("precond") == "nhgd":
        # --precond nhgd: M is kept as the nhgd estimator keeps it (the route's cost below),
        # and applied Q + 1 times: kfac two triangular solves of m x m per class on the rank
        # that holds it (4 m d over the ranks), a block-cyclic Cholesky factor 4 d^2 / P.
        per = 4.0 * m * d / P if route == "kfac" else 4.0 * d * d / P
        w["precond_apply"] = (HVP_STEPS + 1) * per
    if est == "nhgd" or case.get("precond") == "nhgd":
        if route == "online":
            w["online"] = T * (4.0 * d * d * B / P + 2.0 * d * B * B)
        elif route == "accumulate":
            w["accumulate"] = T * d * d * B / P
            w["chol"] = d**3 / 3.0 / P
        elif route == "gram":
            w["gram"] = 2.0 * N * N * ((m + C) if case["kron"] else d) / P
            w["chol"] = N**3 / 3.0 / P
            w["gram_apply"] = 4.0 * N * d  # t = S^T D^-1 g and the correction, on every rank
    return w


def comm_by_stage(case, mach):
    """Seconds of communication per outer step, by the measured stage that contains it."""
    d, m, C, B, T, P = (case[k] for k in ("d", "m", "C", "B", "T", "P"))
    t = {"allreduce": T * mach.allreduce(8.0 * (d + 4), P)}  # inner SGD's gradient sum
    est, route = case["est"], case["route"]
    if est == "cg":
        t["solve"] = (HVP_STEPS + 1) * mach.allreduce(8.0 * d, P)
    if est == "nbo":  # the gradient's reduction, then one of 2 d numbers per step
        t["solve"] = mach.allreduce(8.0 * (d + 1), P) + (NBO_STEPS + 1) * mach.allreduce(
            8.0 * (2 * d + 1), P)
    if est == "nhgd" or case.get("precond") == "nhgd":
        # Samples travel as (x_i, r_i) whenever the problem has the Kronecker form.
        width = 1 + ((m + C) if case["kron"] else d)
        t["curvature"] = T * mach.allgather(8.0 * B * width, P)
        if route == "online":
            t["curvature"] += T * mach.allreduce(8.0 * d * B, P)
    return t


def comm_time(case, mach):
    return sum(comm_by_stage(case, mach).values())


# Which fitted rate divides which work unit, and the measured stage it is fitted to.
RATES = {
    "sgd": "inner_grad", "update": "inner_grad", "hypergrad": "hypergrad", "eval": "eval",
    "hvp": "solve", "online": "curvature", "accumulate": "curvature", "gram": "curvature",
    "chol": "solve", "gram_apply": "solve", "precond_apply": "solve",
}


def predict(case, rates, mach):
    """Seconds per outer step by part; compute slows by ranks / cores when a node is
    oversubscribed."""
    over = max(1.0, case["P"] / mach.nodes / mach.cores)
    w = work(case)
    sec = {k: v / rates[k] * over for k, v in w.items()}
    parts = {
        "sgd": sec.get("sgd", 0) + sec.get("update", 0),
        "curvature": sum(sec.get(k, 0) for k in ("online", "accumulate", "gram")),
        "solve": sum(sec.get(k, 0) for k in ("chol", "gram_apply", "hvp", "precond_apply")),
        "other": sec.get("hypergrad", 0) + sec.get("eval", 0),
        "comm": comm_time(case, mach),
    }
    parts["total"] = sum(parts.values())
    return parts


def memory_mib(case):
    """Per rank, the engine's memory model (efim.c) plus the data shard."""
    d, m, C, n, B, T, P = (case[k] for k in ("d", "m", "C", "n_train", "B", "T", "P"))
    N = T * B
    width = 1 + ((m + C) if case["kron"] else d)
    base = 8.0 * (3 * d * B + 2 * B * width + B * B) + 8.0 * (n + N_VAL) / P * (m + 1)
    if case["route"] in ("online", "accumulate"):
        extra = 8.0 * d * d / P * 1.15
    else:
        extra = (8.0 * N * N / P * 1.15 + 8.0 * N * width
                 + 16.0 * (max(m, C) if case["kron"] else d) * N / math.sqrt(P))
    return (base + extra) / 1048576.0


def measured_case(r):
    return {
        "d": M_FEAT * N_CLASS, "m": M_FEAT, "C": N_CLASS, "n_train": int(r["n_train"]),
        "B": int(r["batch"]), "T": T_INNER, "P": int(r["ranks"]), "est": r["estimator"],
        "route": r["route"], "kron": True, "per_sample_v": True,
        "hvp_batch": 2048 if r["kind"] == "strong" else 512 * int(r["ranks"]),
    }


def fit_rates(groups, cores, mach):
    """One rate per work unit: the median over unoversubscribed runs of work / measured time of
    the stage it belongs to. Stages holding two units (inner_grad: sgd + update; solve: chol
    + hvp never share a run) get the rate of their sum."""
    samples = defaultdict(list)
    for (kind, est, route, P), rows in groups.items():
        if P > cores:
            continue
        case = measured_case(rows[0])
        w = work(case)
        stage_time = {s: statistics.median(float(r[s]) for r in rows) for s in set(RATES.values())}
        # The compute part of a stage: its time less the modelled communication inside it.
        for stage, t in comm_by_stage(case, mach).items():
            if stage in stage_time:
                stage_time[stage] = max(stage_time[stage] - t, 0.1 * stage_time[stage])
        by_stage = defaultdict(float)
        for unit, amount in w.items():
            by_stage[RATES[unit]] += amount
        for unit, amount in w.items():
            t = stage_time[RATES[unit]]
            if t > 0 and amount > 0:
                # Units in one stage share its time in proportion to their work.
                samples[unit].append(by_stage[RATES[unit]] / t)
    rates = {u: statistics.median(v) for u, v in samples.items()}
    return rates


def main():
    out = sys.argv[1]
    rows = read(os.path.join(out, "scaling.csv"))
    comm = fit_comm(read(os.path.join(out, "comm.csv")))
    dgemm = read(os.path.join(out, "dgemm.csv"))
    cores = os.cpu_count() or 1
    groups = defaultdict(list)
    for r in rows:
        groups[(r["kind"], r["estimator"], r["route"], int(r["ranks"]))].append(r)
    rates = fit_rates(groups, cores, Machine(comm, cores))
    missing = [u for u in RATES if u not in rates]
    # Units no measured run exercised (e.g. online in a quick run) borrow the DGEMM rate.
    peak = statistics.median(float(r["gflops_per_rank"]) for r in dgemm) * 1e9
    for u in missing:
        rates[u] = peak
    mach1 = Machine(comm, cores)
    table = []
    for (kind, est, route, P), grp in sorted(groups.items()):
        case = measured_case(grp[0])
        p = predict(case, rates, mach1)
        meas = statistics.median(float(r["sec_per_outer"]) for r in grp)
        label = f"{kind}:{est}" + (f"-{route}" if est == "nhgd" else "")
        table.append(["fit", case["d"], 1, P, label, p["total"], p["sgd"], p["curvature"],
                      p["comm"], p["solve"], memory_mib(case), meas])
    for nodes in PREDICT_NODES:
        mach = Machine(comm, RANKS_PER_NODE, nodes)
        P = nodes * RANKS_PER_NODE
        for d in PREDICT_D:
            for route, kron in (("online", False), ("accumulate", False), ("gram", False),
                                ("gram", True)):
                case = {"d": d, "m": d // N_CLASS, "C": N_CLASS, "n_train": PREDICT_N_TRAIN,
                        "B": PREDICT_B, "T": PREDICT_T, "P": P, "est": "nhgd", "route": route,
                        "kron": kron, "per_sample_v": True, "hvp_batch": 0}
                p = predict(case, rates, mach)
                label = route + ("-kron" if kron else "")
                table.append(["predict", d, nodes, P, label, p["total"], p["sgd"],
                              p["curvature"], p["comm"], p["solve"], memory_mib(case), math.nan])
    with open(os.path.join(out, "model.csv"), "w") as f:
        f.write("kind,d,nodes,ranks,route,sec_per_outer,sec_sgd,sec_curvature,sec_comm,"
                "sec_solve,mem_per_rank_mib,measured_sec_per_outer\n")
        for row in table:
            f.write(",".join(x if isinstance(x, str) else f"{x:.6g}" for x in row) + "\n")
    fits = [r for r in table if r[0] == "fit" and r[3] <= cores]
    ratios = [r[5] / r[11] for r in fits if r[11] > 0]
    with open(os.path.join(out, "model_assumptions.md"), "w") as f:
        f.write(assumptions(rates, comm, peak, missing, ratios, cores))
    return 0


def assumptions(rates, comm, peak, missing, ratios, cores):
    g = lambda u: f"{rates[u] / 1e9:.2f}"
    lines = [
        "Model: time per outer step = inner SGD (T steps of B/P per-sample gradients, 4 d flops "
        "each, plus the d-vector update) + the estimator's work (the solver's own cost model, "
        "src/estimators/nhgd/plan.c: online 4 d^2 B/P + 2 d B^2 per inner step; accumulate d^2 B/P per "
        "inner step (the lower triangle) and a d^3/3P Cholesky; gram 2 N^2 (m + C)/P with the "
        "Kronecker form or 2 N^2 d/P without, an N^3/3P Cholesky and 4 N d on every rank, N = "
        "T B; cg (Q + 1) HVPs of 8 d flops per row) + the hypergradient's cross term and the validation gradient + communication "
        "(inner SGD's all-reduce of d + 4 doubles per step, the all-gather of B per-sample "
        "gradients per step, the online route's all-reduce of d B doubles per step, cg's "
        "all-reduce per HVP).",
        "",
        f"Fitted on this machine ({cores} cores; runs with more ranks than cores are not used "
        "for the fit and are predicted with compute slowed by ranks / cores), in GFLOP/s per "
        f"rank: per-sample gradients {g('sgd')}, cross term {g('hypergrad')}, validation "
        f"gradient {g('eval')}, cg's HVPs {g('hvp')}, online {g('online')}, accumulate "
        f"{g('accumulate')}, gram {g('gram')}, Cholesky {g('chol')}; the DGEMM rate measured "
        f"in the same run is {peak / 1e9:.2f}."
        + (f" Not measured in this run, set to the DGEMM rate: {', '.join(missing)}."
           if missing else ""),
        "",
        "Collectives on one node (bench/comm_rate, fitted latency and bandwidth): "
        + "; ".join(f"{op} on {P} ranks {lat * 1e6:.1f} us + {1 / pb / 1e9:.2f} GB/s"
                    for (op, P), (lat, pb) in sorted(comm.items())) + ".",
        "",
        f"Fit check: predicted / measured time per outer step over the {len(ratios)} "
        "unoversubscribed measured points: "
        + (f"median {statistics.median(ratios):.2f}, range {min(ratios):.2f} .. "
           f"{max(ratios):.2f}." if ratios else "no points."),
        "",
        "Cluster prediction (kind=predict), assumptions: nodes of "
        f"{RANKS_PER_NODE} ranks, each rank computing at this machine's fitted per-rank rates "
        "(one core per rank, OPENBLAS_NUM_THREADS=1); within a node collectives cost what "
        "4 ranks cost here (themselves oversubscribed on 2 cores; how 32 ranks on one node "
        "compare is not known from these measurements); between nodes a ring over a "
        f"{NET_BANDWIDTH * 8 / 1e9:.0f} Gb/s network with {NET_LATENCY * 1e6:.0f} us latency, "
        "no overlap of communication and compute, no contention. Problem: a linear softmax "
        f"model with C = {N_CLASS} classes and d = m C parameters (the main job's shape at d = "
        f"7,840), {PREDICT_N_TRAIN:,} training and {N_VAL:,} validation rows with one weight "
        f"per row (hyper-cleaning), B = {PREDICT_B}, T = {PREDICT_T}; routes online, "
        "accumulate and gram with dense per-sample gradients (what a model without the "
        "Kronecker form costs), and gram-kron with it (what the solver picks for this problem). "
        "Memory per rank: the solver's memory model plus the data shard. The fitted stage "
        "rates come from stage totals over all outer steps, first step's set-up included, "
        "while sec_per_outer excludes the first step. Not modelled: "
        "load imbalance, the block-cyclic layout's granularity on many ranks, ScaLAPACK's "
        "efficiency at 2,048 ranks, file I/O and checkpoints.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
