#!/usr/bin/python3
"""Turn the benchmark suite's CSV files into plots, a summary and the suite's block of the
results README.

Usage: /usr/bin/python3 bench/suite/report.py RESULTS_DIR README_PATH

Reads RESULTS_DIR/{fmnist,hpo,accuracy,scaling,model,kernels}.csv and RESULTS_DIR/meta.txt
(written by bench/suite.sh), writes the PNG plots and RESULTS_DIR/summary.md, and replaces the
text between the marker lines <!-- suite-results:begin --> and <!-- suite-results:end --> of
README_PATH (bench/suite.sh passes bench/results/README.md) with a short results section whose
links are relative to README_PATH's folder. A missing CSV means that section was not run; NaN
values are shown as "n/a". A README_PATH that does not exist is created with the markers; one
that exists without them makes the script exit 1 (summary.md and the plots are written first).
"""

import csv
import math
import os
import re
import sys
from collections import namedtuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

BEGIN_MARKER = "<!-- suite-results:begin -->"
END_MARKER = "<!-- suite-results:end -->"
NOT_RUN = "not run in this suite run"
NA = "n/a"
# The clock the methods are timed on: solver_time, each run's own work without its test
# evaluations, start-up and output (docs/usage.md, three clocks), as benchopt does.
TIME = "solver_time"
DPI = 110

# Hypergradient estimators in the order every table lists them.
ESTIMATORS = ["nhgd", "exact", "cg", "neumann", "soba", "nbo", "nbo-cg", "cg-precond"]
# Readable names of the methods, as the README names them.
LABELS = {
    "nhgd": "NHGD",
    "nhgd-r1": "NHGD, factors every step (R = 1)",
    "nhgd-kfac-empirical": "NHGD kfac, empirical G",
    "nhgd-kfac-all": "NHGD kfac, every sample",
    "nhgd-kfac-k64": "NHGD kfac, K = 64",
    "nhgd-kfac-k16": "NHGD kfac, K = 16",
    "nhgd-gram": "NHGD full EFIM (gram)",
    "nhgd-gram-k16": "NHGD full EFIM, K = 16",
    "nhgd-gram-k64": "NHGD full EFIM, K = 64",
    "exact": "exact",
    "cg": "CG (AID-CG)",
    "neumann": "Neumann (stocBiO)",
    "soba": "SOBA",
    "nbo": "NBO (gd, Newton step)",
    "nbo-cg": "NBO (cg, Newton step)",
    "cg-precond": "CG preconditioned by NHGD's M",
    "noisy": "noisy labels (floor)",
    "clean": "clean labels (ceiling)",
    "grid": "grid search (shared L2)",
}
# One colour per method, the same in every plot.
METHOD_COLORS = {
    "nhgd": "#d62728",
    "exact": "#1f77b4",
    "cg": "#2ca02c",
    "neumann": "#9467bd",
    "soba": "#ff7f0e",
    "noisy": "#7f7f7f",
    "clean": "#000000",
    "grid": "#8c564b",
}
# Colours handed out, in order, to names not listed above (other methods, routes).
SPARE_COLORS = ["#17becf", "#bcbd22", "#e377c2", "#393b79", "#637939", "#8c6d31", "#843c39"]
SPARE_ASSIGNED = {}  # name -> spare colour, filled as names come up

# Per-stage columns of scaling.csv (seconds per outer step, slowest rank) and their colours.
STAGES = ["sampling", "inner_grad", "allreduce", "curvature", "solve", "hypergrad", "eval", "io"]
STAGE_COLORS = dict(zip(STAGES, ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
                                 "#59a14f", "#edc948", "#b07aa1", "#9c755f"]))

# What one section contributes: its title, lines of summary.md, lines of the README block.
Section = namedtuple("Section", "title summary readme")


# ---------------------------------------------------------------------------------------------
# Reading the inputs
# ---------------------------------------------------------------------------------------------

def to_float(text):
    """The number in text, or NaN when it is empty or not a number."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_csv(path, text_columns):
    """Rows of a CSV file as dicts, or None if the file does not exist.

    Columns named in text_columns stay (stripped) strings; every other column becomes a float,
    NaN where the cell is empty, missing or not a number."""
    if not os.path.exists(path):
        return None
    rows = []
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            row = {}
            for key, value in raw.items():
                if key is None:  # cells beyond the header
                    continue
                key = key.strip()
                value = (value or "").strip()
                row[key] = value if key in text_columns else to_float(value)
            rows.append(row)
    return rows


def read_meta(path):
    """The key=value lines of meta.txt as a dict (empty if the file is missing)."""
    meta = {}
    if os.path.exists(path):
        with open(path) as handle:
            for line in handle:
                line = line.strip()
                if "=" in line and not line.startswith("#"):
                    key, value = line.split("=", 1)
                    meta[key.strip()] = value.strip()
    return meta


class Context:
    """Where the results live, what meta.txt says, and where the README is."""

    def __init__(self, results_dir, readme_path):
        self.results_dir = os.path.abspath(results_dir)
        self.readme_path = os.path.abspath(readme_path)
        self.meta = read_meta(os.path.join(self.results_dir, "meta.txt"))

    def path(self, name):
        """A file in the results folder."""
        return os.path.join(self.results_dir, name)

    def from_readme(self, name):
        """The path of a results file relative to the README's folder, with / separators."""
        relative = os.path.relpath(self.path(name), os.path.dirname(self.readme_path))
        return relative.replace(os.sep, "/")

    def get(self, key, default="unknown"):
        """A meta.txt value, or default when it is absent or empty."""
        return self.meta.get(key) or default


# ---------------------------------------------------------------------------------------------
# Numbers: NaN-safe statistics, grouping and formatting
# ---------------------------------------------------------------------------------------------

def finite(value):
    """True for a finite number."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def median(values):
    """Median of the finite values, NaN if there are none."""
    kept = [v for v in values if finite(v)]
    return float(np.median(kept)) if kept else math.nan


def sort_number(value):
    """A sort key that puts NaN after every number."""
    return value if finite(value) else math.inf


def group_by(rows, *keys):
    """Rows grouped by the tuple of their values at keys, groups in order of first appearance."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k, "") for k in keys), []).append(row)
    return groups


def preferred_index(name, preferred):
    """Position of name in preferred, or after all of them."""
    return preferred.index(name) if name in preferred else len(preferred)


def ordered(names, preferred):
    """The distinct names, those in preferred first in that order, then the rest sorted."""
    names = set(names)
    return [n for n in preferred if n in names] + sorted(names - set(preferred))


def last_rows(rows, run_key):
    """For every run (one value of run_key), its row with the largest step (last one on ties)."""
    finals = []
    for group in group_by(rows, run_key).values():
        index_and_row = max(enumerate(group),
                            key=lambda item: (item[1].get("step") if finite(item[1].get("step"))
                                              else -math.inf, item[0]))
        finals.append(index_and_row[1])
    return finals


def column(rows, key):
    """The values of one numeric column (NaN where the column is missing)."""
    return [row.get(key, math.nan) for row in rows]


def median_curve(rows, xkey, ykey):
    """Median over runs, at every step, of the columns xkey and ykey; points with a NaN dropped."""
    by_step = {}
    for row in rows:
        if finite(row.get("step")):
            by_step.setdefault(row["step"], []).append(row)
    xs, ys = [], []
    for step in sorted(by_step):
        x = median(column(by_step[step], xkey))
        y = median(column(by_step[step], ykey))
        if finite(x) and finite(y):
            xs.append(x)
            ys.append(y)
    return np.array(xs), np.array(ys)


def fmt(value, spec):
    """value formatted with spec, or n/a."""
    return format(value, spec) if finite(value) else NA


def fmt_seconds(value):
    """Seconds with a number of digits that suits their size."""
    if not finite(value):
        return NA
    size = abs(value)
    spec = ".0f" if size >= 100 else ".1f" if size >= 10 else ".2f" if size >= 0.1 else ".3g"
    return format(value, spec)


def fmt_count(value):
    """A count: 12,345 below 100,000, else 1.23e6."""
    if not finite(value):
        return NA
    if abs(value) < 1e5:
        return f"{value:,.0f}"
    return f"{value:.3g}".replace("e+0", "e").replace("e+", "e")


def fmt_bytes(value):
    """Bytes in decimal units (B, kB, MB, GB)."""
    if not finite(value):
        return NA
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {unit}"
    return f"{value:.0f} B"


def fmt_percent(fraction):
    """A fraction as a whole percentage ('59 %')."""
    return f"{100 * fraction:.0f} %" if finite(fraction) else NA


def fmt_plain(value):
    """A number without trailing zeros (ranks, d, L2 weights, seeds)."""
    return fmt(value, "g")


def plural(count, word):
    """'1 rank', '4 ranks', 'n/a ranks'."""
    return f"{fmt_plain(count)} {word}" + ("" if count == 1 else "s")


def label(method):
    """The readable name of a method."""
    return LABELS.get(method, method)


def color(name):
    """The colour of a method or route: fixed for known methods, else the next spare colour
    (remembered, so that a name keeps its colour across plots)."""
    if name in METHOD_COLORS:
        return METHOD_COLORS[name]
    if name not in SPARE_ASSIGNED:
        SPARE_ASSIGNED[name] = SPARE_COLORS[len(SPARE_ASSIGNED) % len(SPARE_COLORS)]
    return SPARE_ASSIGNED[name]


def safe_name(text):
    """text reduced to characters that are safe in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "unnamed"


def sentence(text):
    """text without a trailing full stop (so that it can sit inside a sentence)."""
    return text.rstrip().rstrip(".")


# ---------------------------------------------------------------------------------------------
# Markdown and plotting helpers
# ---------------------------------------------------------------------------------------------

def md_table(headers, rows, align):
    """A markdown table; align holds one 'l' or 'r' per column. No rows: a line saying so."""
    if not rows:
        return ["(no rows)"]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |")
    return lines


def plot_series(ax, x, y, logx=False, logy=False, **style):
    """Plot the points of (x, y) that are finite (and positive on log axes); False if none."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if logx:
        keep &= x > 0
    if logy:
        keep &= y > 0
    if not keep.any():
        return False
    ax.plot(x[keep], y[keep], **style)
    return True


def finish_axes(ax, drawn, xlabel, ylabel, title, logx=False, logy=False):
    """Labels, grid and log scales of a panel; 'no data' written in a panel left empty."""
    if drawn:
        for on, axis, set_scale, get_limits in ((logx, ax.xaxis, ax.set_xscale, ax.get_xlim),
                                                (logy, ax.yaxis, ax.set_yscale, ax.get_ylim)):
            if on:
                set_scale("log")
                label_short_log_axis(axis, get_limits())
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)


def plain_tick(value, minor):
    """Tick text of a log axis in plain numbers; minor ticks only at 2 and 5 times a power of
    ten."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    if minor and round(mantissa) not in (2, 5):
        return ""
    return f"{value:.3g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def label_short_log_axis(axis, limits):
    """On a log axis spanning two decades or less, write plain tick labels (0.2, 0.5, 1, ...)
    including some minor ticks, so that it carries more than one or two labels."""
    low, high = sorted(limits)
    if low > 0 and math.log10(high / low) <= 2:
        axis.set_major_formatter(FuncFormatter(lambda v, _: plain_tick(v, False)))
        axis.set_minor_formatter(FuncFormatter(lambda v, _: plain_tick(v, True)))


def legend_outside(ax):
    """A legend to the right of the panel, so that it never covers data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                  fontsize=8, frameon=False)


def save(fig, path):
    """Write the figure as PNG (including anything outside the axes) and free it."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Section 1: Fashion-MNIST hyper-cleaning (fmnist.csv)
# ---------------------------------------------------------------------------------------------

REFERENCES = ["clean", "noisy"]  # plain models trained on clean / noisy labels


def fmnist_targets(ctx):
    """The test-accuracy targets from meta key fmnist_targets (default 0.80, 0.81, 0.82)."""
    targets = [to_float(t) for t in ctx.get("fmnist_targets", "0.80,0.81,0.82").split(",")]
    return [t for t in targets if finite(t)] or [0.80, 0.81, 0.82]


def plot_fmnist(runs, finals, xkey, ykey, xlabel, ylabel, title, path):
    """One median curve per estimator against xkey (log axis); the plain models' final median
    as horizontal dashed lines."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    drawn = False
    for method in ordered(runs, ESTIMATORS):
        if method in REFERENCES:
            continue
        x, y = median_curve(runs[method], xkey, ykey)
        drawn |= plot_series(ax, x, y, logx=True, color=color(method), marker="o",
                             markersize=3, linewidth=1.5, label=label(method))
    for method in REFERENCES:
        value = median(column(finals.get(method, []), ykey))
        if finite(value):
            name = f"{method} labels"
            if ykey == "test_acc":  # the plain models bound the accuracy from below / above
                name = ("floor: " if method == "noisy" else "ceiling: ") + name
            ax.axhline(value, color=color(method), linestyle="--", linewidth=1.2,
                       label=f"{name}, final ({value:.4g})")
    finish_axes(ax, drawn, xlabel, ylabel, title, logx=True)
    legend_outside(ax)
    save(fig, path)


def fmnist_final_table(runs, finals):
    """Final values per method (medians over seeds): clean, noisy, then the estimators."""
    rows = []
    for method in ordered(runs, REFERENCES + ESTIMATORS):
        last = finals[method]
        rows.append([label(method), len(last),
                     fmt(median(column(last, "test_acc")), ".4f"),
                     fmt(median(column(last, "val_loss")), ".4f"),
                     fmt_seconds(median(column(last, TIME))),
                     fmt_count(median(column(last, "samples")))])
    return md_table(["method", "seeds", "test accuracy", "validation loss", "solver time (s)",
                     "samples"], rows, "lrrrrr")


def first_reaching(seed_rows, target):
    """(solver time, samples) of the first step of one run with test_acc >= target, or None."""
    for row in sorted(seed_rows, key=lambda r: sort_number(r.get("step"))):
        accuracy = row.get("test_acc")
        if finite(accuracy) and accuracy >= target:
            return row.get(TIME), row.get("samples")
    return None


def fmnist_target_table(runs, targets):
    """Per estimator and target: median solver time / samples to reach it over the seeds that
    did, with the number of seeds that reached it when not all did."""
    rows = []
    for method in ordered(runs, ESTIMATORS):
        if method in REFERENCES:
            continue
        seeds = group_by(runs[method], "seed")
        cells = [label(method)]
        for target in targets:
            hits = [first_reaching(r, target) for r in seeds.values()]
            hits = [h for h in hits if h is not None]
            if not hits:
                cells.append("not reached")
                continue
            seconds = median(h[0] for h in hits)
            cell = (fmt_seconds(seconds) + (" s" if finite(seconds) else "")
                    + f" / {fmt_count(median(h[1] for h in hits))}")
            if len(hits) < len(seeds):
                cell += f" ({len(hits)}/{len(seeds)} reached)"
            cells.append(cell)
        rows.append(cells)
    return md_table(["method"] + [f"test acc. ≥ {t:.2f}" if round(t, 2) == t
                                  else f"test acc. ≥ {t:g}" for t in targets], rows,
                    "l" + "r" * len(targets))


def fmnist_report(rows, ctx):
    """Plots and tables of the hyper-cleaning runs."""
    runs = {key[0]: group for key, group in group_by(rows, "method").items()}
    finals = {method: last_rows(group, "seed") for method, group in runs.items()}
    plots = [("fmnist_acc_time.png", TIME, "test_acc", "solver time (s)", "test accuracy",
              "Test accuracy against solver time (median over seeds)"),
             ("fmnist_acc_samples.png", "samples", "test_acc",
              "samples (per-sample gradients + Hessian-vector products)", "test accuracy",
              "Test accuracy against work (median over seeds)"),
             ("fmnist_valloss_time.png", TIME, "val_loss", "solver time (s)",
              "validation loss", "Validation loss against solver time (median over seeds)"),
             ("fmnist_valloss_samples.png", "samples", "val_loss",
              "samples (per-sample gradients + Hessian-vector products)", "validation loss",
              "Validation loss against work (median over seeds)")]
    for name, xkey, ykey, xlabel, ylabel, title in plots:
        plot_fmnist(runs, finals, xkey, ykey, xlabel, ylabel, title, ctx.path(name))
    final_table = fmnist_final_table(runs, finals)
    target_table = fmnist_target_table(runs, fmnist_targets(ctx))
    target_note = ("Time to reach each test-accuracy target: median solver time (s: the "
                   "method's own work, without test evaluations) / median samples of the first "
                   "outer step at or above it, over the seeds that reached it.")
    summary = (["Final values, medians over seeds:", ""] + final_table
               + ["", target_note, ""] + target_table)
    for name, _, _, _, _, title in plots:
        summary += ["", f"![{title}]({name})"]
    readme = (["**Fashion-MNIST hyper-cleaning** (final values, medians over seeds):", ""]
              + final_table + ["", target_note, ""] + target_table
              + ["", f"![Fashion-MNIST test accuracy against solver time]"
                 f"({ctx.from_readme('fmnist_acc_time.png')})"])
    return summary, readme


# ---------------------------------------------------------------------------------------------
# Section 2: hyperparameter optimisation with per-feature L2 (hpo.csv)
# ---------------------------------------------------------------------------------------------

def grid_best_so_far(seed_rows):
    """The grid search of one seed as the curve of its best point so far (by validation loss):
    one row per grid point with the cumulative solver time and samples and the best point's
    values; points before the first finite validation loss are left out."""
    curve, best = [], None
    for row in sorted(seed_rows, key=lambda r: sort_number(r.get("step"))):
        loss = row.get("val_loss")
        if finite(loss) and (best is None or loss < best["val_loss"]):
            best = row
        if best is not None:
            curve.append({"step": row.get("step"), TIME: row.get(TIME),
                          "samples": row.get("samples"), "val_loss": best["val_loss"],
                          "test_loss": best.get("test_loss"), "test_acc": best.get("test_acc"),
                          "l2": best.get("l2")})
    return curve


def plot_hpo(dataset, runs, grid_curve, path):
    """Validation and test loss against solver time: estimators' medians and the grid search's
    best-so-far step line."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    for ax, key, name in ((axes[0], "val_loss", "validation loss"),
                          (axes[1], "test_loss", "test loss")):
        drawn = False
        for method in ordered(runs, ESTIMATORS):
            x, y = median_curve(runs[method], TIME, key)
            drawn |= plot_series(ax, x, y, logx=True, color=color(method), marker="o",
                                 markersize=3, linewidth=1.5, label=label(method))
        x, y = median_curve(grid_curve, TIME, key)
        drawn |= plot_series(ax, x, y, logx=True, color=color("grid"), drawstyle="steps-post",
                             linewidth=1.8, label=label("grid"))
        finish_axes(ax, drawn, "solver time (s)", name,
                    f"{dataset}: {name} against solver time (median over seeds)", logx=True)
    legend_outside(axes[1])
    save(fig, path)


def hpo_report(rows, ctx):
    """Per dataset: plot, table and a README line comparing estimators with the grid search."""
    summary, readme = [], []
    by_dataset = group_by(rows, "dataset")
    for dataset in ordered([k[0] for k in by_dataset], ["synthetic", "fmnist"]):
        data = by_dataset[(dataset,)]
        grid_rows = [r for r in data if r.get("method") == "grid"]
        runs = {k[0]: g for k, g in group_by(data, "method").items() if k[0] != "grid"}
        grid_seeds = [grid_best_so_far(g) for g in group_by(grid_rows, "seed").values()]
        grid_curve = [point for curve in grid_seeds for point in curve]
        image = f"hpo_{safe_name(dataset)}.png"
        plot_hpo(dataset, runs, grid_curve, ctx.path(image))

        table, finals = [], {}
        for method in ordered(runs, ESTIMATORS):
            last = last_rows(runs[method], "seed")
            finals[method] = (median(column(last, "test_loss")),
                              median(column(last, TIME)), len(last))
            table.append([label(method), len(last), fmt(median(column(last, "val_loss")), ".4f"),
                          fmt(finals[method][0], ".4f"),
                          fmt(median(column(last, "test_acc")), ".4f"),
                          fmt_seconds(finals[method][1]),
                          fmt_count(median(column(last, "samples"))), "—"])
        grid = None
        if grid_rows:
            best = [curve[-1] for curve in grid_seeds if curve]
            totals = last_rows(grid_rows, "seed")
            grid = {key: median(column(best, key))
                    for key in ("val_loss", "test_loss", "test_acc", "l2")}
            grid[TIME] = median(column(totals, TIME))
            grid["points"] = median(column(totals, "step"))
            table.append([f"{label('grid')}, best point", len(totals),
                          fmt(grid["val_loss"], ".4f"), fmt(grid["test_loss"], ".4f"),
                          fmt(grid["test_acc"], ".4f"), fmt_seconds(grid[TIME]),
                          fmt_count(median(column(totals, "samples"))),
                          fmt(grid["l2"], ".3g")])
        summary += [f"### {dataset}", "",
                    "Estimators: final outer step, medians over seeds. Grid search: the grid "
                    "point with the lowest validation loss (median over seeds) and the total "
                    "time and samples of the whole grid.", ""]
        summary += md_table(["method", "seeds", "val loss", "test loss", "test acc",
                             "solver time (s)", "samples", "L2 (grid)"], table, "lrrrrrrr")
        summary += ["", f"![HPO on {dataset}: losses against solver time]({image})", ""]
        readme.append(hpo_readme_line(dataset, finals, grid))
    return summary, readme


def hpo_readme_line(dataset, finals, grid):
    """One line: the estimators' lowest final test loss (and NHGD's) against the grid's best."""
    parts = []
    # Rank only the estimators run on every seed (exact may have fewer: its medians are over
    # other seeds and not comparable).
    most = max((finals[f][2] for f in finals), default=0)
    ranked = sorted((f for f in finals if finite(finals[f][0]) and finals[f][2] == most),
                    key=lambda m: finals[m][0])
    if ranked:
        best = ranked[0]
        parts.append(f"lowest final test loss among estimators {label(best)} "
                     f"{finals[best][0]:.4f} ({fmt_seconds(finals[best][1])} s)")
        if best != "nhgd" and "nhgd" in finals:
            parts.append(f"NHGD {fmt(finals['nhgd'][0], '.4f')} "
                         f"({fmt_seconds(finals['nhgd'][1])} s)")
    else:
        parts.append("no estimator reported a final test loss")
    if grid is not None:
        parts.append(f"grid search best by validation loss: test loss "
                     f"{fmt(grid['test_loss'], '.4f')} at L2 = {fmt(grid['l2'], '.3g')} "
                     f"({fmt_seconds(grid[TIME])} s for {fmt_plain(grid['points'])} points)")
    else:
        parts.append("grid search not run")
    fewer = [f"{label(f)} ran on {plural(finals[f][2], 'seed')} only (table in the summary)"
             for f in finals if finals[f][2] < most]
    return (f"- **HPO, {dataset}** (medians over {plural(most, 'seed')}): " + "; ".join(parts + fewer)
            + ".")


# ---------------------------------------------------------------------------------------------
# Section 3: hypergradient accuracy (accuracy.csv)
# ---------------------------------------------------------------------------------------------

def accuracy_points(rows):
    """Medians over seeds per (method, param, value), sorted by method then numeric value."""
    points = {}
    for (method, param, value), group in group_by(rows, "method", "param", "value").items():
        points.setdefault(method, []).append({
            "param": param, "value": value, "seeds": len(group),
            **{key: median(column(group, key))
               for key in ("samples", TIME, "rel_err", "cosine")}})
    for series in points.values():
        series.sort(key=lambda p: (p["param"], sort_number(to_float(p["value"])), p["value"]))
    return {method: points[method] for method in ordered(points, ESTIMATORS)}


def plot_accuracy(problem, points, path):
    """Relative error against solver time and against samples, log-log, one line per method."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    for ax, key, xlabel, against in (
            (axes[0], TIME, "solver time of the hypergradient (s)", "solver time"),
            (axes[1], "samples", "samples N (per-sample gradients + HVPs)", "samples")):
        drawn = False
        for method, series in points.items():
            drawn |= plot_series(ax, column(series, key), column(series, "rel_err"),
                                 logx=True, logy=True, color=color(method), marker="o",
                                 markersize=5, linewidth=1.5, label=label(method))
        finish_axes(ax, drawn, xlabel, "relative error ||h - h_exact|| / ||h_exact||",
                    f"{problem}: error against {against} (median over seeds)",
                    logx=True, logy=True)
    legend_outside(axes[1])
    save(fig, path)


def budget_report(rows, ctx):
    """Test accuracy against solver time under one budget of it per method: plot, table, and a
    README line."""
    budget = max(column(rows, TIME)) if rows else math.nan
    runs = {key[0]: group for key, group in group_by(rows, "method").items()}
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    table = []
    for method in ordered(runs, ESTIMATORS):
        group = runs[method]
        x, y = column(group, TIME), column(group, "test_acc")
        plot_series(ax, x, y, color=color(method), linewidth=1.2, label=label(method))
        best = max((v for v in y if finite(v)), default=math.nan)
        last = y[-1] if y else math.nan
        table.append([label(method), len(group), fmt(last, ".4f"), fmt(best, ".4f"),
                      "yes" if finite(best) and best - last <= 0.005 else "no"])
    ax.set_xlabel("solver time (s)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Fashion-MNIST hyper-cleaning under a solver-time budget")
    ax.grid(True, alpha=0.3)
    legend_outside(ax)
    save(fig, ctx.path("budget_acc_time.png"))
    summary = md_table(["method", "outer steps", "test accuracy at the end of the budget", "best",
                        "end within 0.005 of best"], table, "lrrrl")
    summary += ["", "![Test accuracy under a solver-time budget](budget_acc_time.png)"]
    nhgd = next((r for r in table if r[0] == label("nhgd")), None)
    readme = []
    if nhgd:
        readme = [f"- **Budget of {fmt_seconds(budget)} s of solver time** on the main job: NHGD "
                  f"ends at test "
                  f"accuracy {nhgd[2]} (best {nhgd[3]}, {nhgd[1]} outer steps); "
                  + "; ".join(f"{r[0]} {r[2]}" for r in table if r is not nhgd)
                  + f" ({ctx.from_readme('summary.md')})."]
    return summary, readme


def accuracy_report(rows, ctx):
    """Per problem: plot, table, and a README line with each method's error at its largest
    budget."""
    summary, readme = [], []
    by_problem = group_by(rows, "problem")
    for problem in sorted(k[0] for k in by_problem):
        points = accuracy_points(by_problem[(problem,)])
        image = f"accuracy_{safe_name(problem)}.png"
        plot_accuracy(problem, points, ctx.path(image))
        table = [[label(method), f"{p['param']} = {p['value']}", p["seeds"],
                  fmt_count(p["samples"]), fmt_seconds(p[TIME]),
                  fmt(p["rel_err"], ".3g"), fmt(p["cosine"], ".4f")]
                 for method, series in points.items() for p in series]
        summary += [f"### {problem}", "", "Medians over seeds.", ""]
        summary += md_table(["method", "budget", "seeds", "samples", "solver time (s)",
                             "relative error", "cosine"], table, "llrrrrr")
        summary += ["", f"![Hypergradient accuracy on {problem}]({image})", ""]
        headline = [f"{label(method)} {fmt(series[-1]['rel_err'], '.3g')} "
                    f"({series[-1]['param']} = {series[-1]['value']}, "
                    f"{fmt_seconds(series[-1][TIME])} s)"
                    for method, series in points.items()]
        readme.append(f"- **Hypergradient relative error, {problem}** (median over seeds at "
                      f"each method's largest budget): " + "; ".join(headline) + ".")
    return summary, readme


# ---------------------------------------------------------------------------------------------
# Section 4: strong and weak scaling (scaling.csv)
# ---------------------------------------------------------------------------------------------

SCALING_NUMBERS = ["sec_per_outer"] + STAGES + ["bytes_per_inner_step", "max_rss_mib"]


def scaling_points(rows):
    """Medians over repeats per (kind, estimator, route, ranks, n_train, batch), sorted."""
    points = []
    keys = ("kind", "estimator", "route", "ranks", "n_train", "batch")
    for key, group in group_by(rows, *keys).items():
        point = dict(zip(keys, key))
        point.update({name: median(column(group, name)) for name in SCALING_NUMBERS})
        point["oversubscribed"] = any(v == 1 for v in column(group, "oversubscribed"))
        points.append(point)
    points.sort(key=lambda p: (preferred_index(p["kind"], ["strong", "weak"]), p["kind"],
                               preferred_index(p["estimator"], ESTIMATORS), p["estimator"],
                               p["route"], sort_number(p["n_train"]), sort_number(p["batch"]),
                               sort_number(p["ranks"])))
    return points


def series_key(point):
    """The curve a point belongs to: strong scaling keeps the problem (n_train) fixed, weak
    scaling grows it with the ranks."""
    if point["kind"] == "strong":
        return point["kind"], point["estimator"], point["route"], point["n_train"]
    return point["kind"], point["estimator"], point["route"]


def one_rank_ratio(point, points):
    """t1 / tP against the 1-rank point of the same curve (NaN without one)."""
    base = [p["sec_per_outer"] for p in points
            if p["ranks"] == 1 and series_key(p) == series_key(point)]
    if not base or not finite(point["sec_per_outer"]) or point["sec_per_outer"] <= 0:
        return math.nan
    return base[0] / point["sec_per_outer"]


def plot_scaling_panel(ax, kind, points):
    """Stacked stage bars per (estimator, route) group and rank count, oversubscribed bars
    hatched, and the measured seconds per outer step as connected markers."""
    series = {}
    for point in points:
        if point["kind"] == kind:
            series.setdefault(series_key(point), []).append(point)
    position, ticks, tick_labels, tops = 0.0, [], [], []
    for group in series.values():
        xs = []
        for point in group:
            bottom = 0.0
            for stage in STAGES:
                value = point[stage]
                if finite(value) and value > 0:
                    ax.bar(position, value, bottom=bottom, width=0.8,
                           color=STAGE_COLORS[stage], linewidth=0.4,
                           hatch="//" if point["oversubscribed"] else None,
                           edgecolor="black" if point["oversubscribed"] else "none")
                    bottom += value
            top = max(bottom, point["sec_per_outer"] if finite(point["sec_per_outer"]) else 0)
            tops.append((position, top, point["oversubscribed"]))
            xs.append(position)
            ticks.append(position)
            tick_labels.append(fmt_plain(point["ranks"]))
            position += 1
        plot_series(ax, xs, column(group, "sec_per_outer"), color="black", marker="D",
                    markersize=5, linewidth=1)
        first = group[0]
        name = f"{first['estimator']} · {first['route']}" + (
            f"\nn_train {fmt_count(first['n_train'])}" if kind == "strong" else "")
        ax.text((xs[0] + xs[-1]) / 2, 1.01, name, ha="center", va="bottom", fontsize=8,
                transform=ax.get_xaxis_transform())
        if len(ticks) < sum(len(g) for g in series.values()):  # a separator between groups
            ax.axvline(position - 0.2, color="0.8", linewidth=0.8)
        position += 0.6
    highest = max([t for _, t, _ in tops] + [0.0])
    for x, top, oversubscribed in tops:
        if oversubscribed:
            ax.annotate("(oversubscribed)", (x, top), xytext=(0, 7), textcoords="offset points",
                        rotation=90, ha="center", va="bottom", fontsize=7)
    if ticks:
        ax.set_xticks(ticks, tick_labels)
        ax.set_ylim(0, highest * 1.45 if highest > 0 else 1)
        ax.set_xlim(-0.7, position - 0.5)
    finish_axes(ax, bool(ticks), "ranks", "seconds per outer step (slowest rank)", "")
    ax.xaxis.grid(False)
    ax.set_title(f"{kind} scaling", fontsize=10, pad=30 if kind == "strong" else 18)


def plot_scaling(points, path):
    """Strong and weak scaling panels with one shared legend."""
    fig, axes = plt.subplots(2, 1, figsize=(11, 8.5))
    for ax, kind in zip(axes, ("strong", "weak")):
        plot_scaling_panel(ax, kind, points)
    handles = [Patch(color=STAGE_COLORS[s], label=s) for s in STAGES]
    handles += [Line2D([], [], color="black", marker="D", linewidth=1,
                       label="measured s / outer step"),
                Patch(facecolor="white", edgecolor="black", hatch="//",
                      label="(oversubscribed)\nranks > cores")]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               frameon=False, title="s / outer step, median over repeats", title_fontsize=8)
    fig.tight_layout()
    save(fig, path)


def largest_stages(point, count=3):
    """The count largest stages of a point as 'stage 0.12' text."""
    stages = sorted((s for s in STAGES if finite(point[s])), key=lambda s: -point[s])
    return ", ".join(f"{s} {fmt_seconds(point[s])}" for s in stages[:count]) or NA


def scaling_report(rows, ctx):
    """Scaling plot, full table and the README headline for NHGD's strong scaling."""
    points = scaling_points(rows)
    plot_scaling(points, ctx.path("scaling.png"))
    table = []
    for point in points:
        ratio = one_rank_ratio(point, points)
        versus = (fmt(ratio, ".2f") + "×" if point["kind"] == "strong"
                  else fmt(100 * ratio, ".0f") + " %") if finite(ratio) else NA
        table.append([point["kind"], point["estimator"], point["route"],
                      fmt_plain(point["ranks"]) + ("*" if point["oversubscribed"] else ""),
                      fmt_count(point["n_train"]), fmt_plain(point["batch"]),
                      fmt_seconds(point["sec_per_outer"]), versus, largest_stages(point),
                      fmt_bytes(point["bytes_per_inner_step"]),
                      fmt(point["max_rss_mib"], ".0f")])
    summary = ["Medians over repeats; stage times are seconds per outer step on the slowest "
               "rank. `*`: oversubscribed (more ranks than cores). vs 1 rank: speed-up t1/tP "
               "(strong scaling, same n_train) or efficiency t1/tP (weak scaling).", ""]
    summary += md_table(["kind", "estimator", "route", "ranks", "n_train", "batch",
                         "s / outer", "vs 1 rank", "largest stages (s / outer)",
                         "bytes / inner step", "max RSS (MiB)"], table, "lllrrrrrlrr")
    summary += ["", "![Stage times per outer step, strong and weak scaling](scaling.png)"]
    return summary, scaling_readme(points)


def scaling_readme(points):
    """README lines: NHGD's seconds per outer step against ranks, per strong-scaling curve."""
    strong = [p for p in points if p["kind"] == "strong" and p["estimator"] == "nhgd"]
    if not strong:
        return ["- **Strong scaling, NHGD**: no NHGD strong-scaling rows in this run."]
    lines = []
    for (_, _, route, n_train), group in group_by(strong, "kind", "estimator", "route",
                                                  "n_train").items():
        cells = []
        for point in group:
            ratio = one_rank_ratio(point, points)
            cells.append(plural(point["ranks"], "rank")
                         + ("*" if point["oversubscribed"] else "")
                         + f" {fmt_seconds(point['sec_per_outer'])} s"
                         + (f" ({ratio:.2f}×)" if finite(ratio) and point["ranks"] != 1 else ""))
        oversubscribed = any(p["oversubscribed"] for p in group)
        lines.append(f"- **Strong scaling, NHGD** ({route} route, n_train = "
                     f"{fmt_count(n_train)}; seconds per outer step, median over repeats, "
                     f"speed-up against 1 rank): " + ", ".join(cells)
                     + ("; * oversubscribed" if oversubscribed else "") + ".")
    return lines


# ---------------------------------------------------------------------------------------------
# Section 5: calibrated performance model (model.csv)
# ---------------------------------------------------------------------------------------------

NODE_STYLES = ["-", "--", ":", "-."]  # line style per node count in the extrapolation panel


def plot_model(fit, predict, path):
    """Left: predicted against measured at the fit points (log-log, y = x). Right: predicted
    seconds per outer step against d, one line per (nodes, route)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    drawn = False
    for (route,), group in group_by(fit, "route").items():
        drawn |= plot_series(ax, column(group, "measured_sec_per_outer"),
                             column(group, "sec_per_outer"), logx=True, logy=True,
                             color=color(route), marker="o", linestyle="none",
                             label=f"{route} route")
    values = [v for v in column(fit, "measured_sec_per_outer") + column(fit, "sec_per_outer")
              if finite(v) and v > 0]
    if drawn:
        span = [min(values) / 1.5, max(values) * 1.5]
        ax.plot(span, span, color="0.5", linestyle="--", linewidth=1,
                label="predicted = measured")
        ax.set_xlim(span)
        ax.set_ylim(span)
        ax.legend(loc="upper left", fontsize=8)
    finish_axes(ax, drawn, "measured s / outer step", "predicted s / outer step",
                "Model against measurement (fit points)", logx=True, logy=True)

    ax = axes[1]
    drawn = False
    node_counts = sorted({n for n in column(predict, "nodes") if finite(n)})
    series = group_by(sorted(predict, key=lambda r: sort_number(r.get("d"))), "nodes", "route")
    for (nodes, route), group in sorted(series.items(),
                                        key=lambda item: (sort_number(item[0][0]), item[0][1])):
        style = NODE_STYLES[node_counts.index(nodes) % len(NODE_STYLES)] \
            if nodes in node_counts else "-"
        drawn |= plot_series(ax, column(group, "d"), column(group, "sec_per_outer"),
                             logx=True, logy=True, color=color(route), marker="o",
                             markersize=4, linestyle=style,
                             label=f"{plural(nodes, 'node')}, {route}")
    finish_axes(ax, drawn, "d (parameters of the inner model)", "predicted s / outer step",
                "Extrapolation (predicted)", logx=True, logy=True)
    legend_outside(ax)
    save(fig, path)


def model_report(rows, ctx):
    """Model plot, the fit points against measurement and the largest-d predictions."""
    fit = [r for r in rows if r.get("kind") == "fit"]
    predict = [r for r in rows if r.get("kind") == "predict"]
    plot_model(fit, predict, ctx.path("model.png"))

    ratios, fit_table = [], []
    for row in sorted(fit, key=lambda r: (r.get("route", ""), sort_number(r.get("nodes")),
                                          sort_number(r.get("ranks")), sort_number(r.get("d")))):
        predicted, measured = row.get("sec_per_outer"), row.get("measured_sec_per_outer")
        ratio = predicted / measured if finite(predicted) and finite(measured) and measured > 0 \
            else math.nan
        if finite(ratio):
            ratios.append(ratio)
        fit_table.append([fmt_count(row.get("d")), fmt_plain(row.get("nodes")),
                          fmt_plain(row.get("ranks")), row.get("route", ""),
                          fmt_seconds(predicted), fmt_seconds(measured), fmt(ratio, ".2f")])
    summary = ["Fit points (measured in this run):", ""]
    summary += md_table(["d", "nodes", "ranks", "route", "predicted s / outer",
                         "measured s / outer", "predicted / measured"], fit_table, "rrrlrrr")
    if ratios:
        summary += ["", f"predicted / measured: median {median(ratios):.2f}, range "
                        f"{min(ratios):.2f}–{max(ratios):.2f} over {len(ratios)} fit points."]

    largest = []
    for group in group_by(predict, "nodes", "route").values():
        largest.append(max(group, key=lambda r: r["d"] if finite(r.get("d")) else -math.inf))
    largest.sort(key=lambda r: (sort_number(r.get("nodes")), r.get("route", "")))
    predict_table = [[fmt_count(r.get("d")), fmt_plain(r.get("nodes")),
                      fmt_plain(r.get("ranks")), r.get("route", ""),
                      fmt_seconds(r.get("sec_per_outer")), fmt_seconds(r.get("sec_sgd")),
                      fmt_seconds(r.get("sec_curvature")), fmt_seconds(r.get("sec_comm")),
                      fmt_seconds(r.get("sec_solve")), fmt(r.get("mem_per_rank_mib"), ".0f")]
                     for r in largest]
    summary += ["", "Predictions at the largest d per node count and route:", ""]
    summary += md_table(["d", "nodes", "ranks", "route", "s / outer", "SGD", "curvature",
                         "communication", "solve", "memory per rank (MiB)"],
                        predict_table, "rrrlrrrrrr")
    summary += ["", "![Performance model: fit and extrapolation](model.png)"]

    assumptions = ctx.path("model_assumptions.md")
    if os.path.exists(assumptions):
        with open(assumptions) as handle:
            summary += ["", "Model assumptions (model_assumptions.md):", "",
                        handle.read().rstrip("\n")]
    return summary, []


# ---------------------------------------------------------------------------------------------
# Section 6: EFIM kernel efficiency (kernels.csv)
# ---------------------------------------------------------------------------------------------

def kernel_series(rows):
    """Rows grouped per (route, ranks), each group sorted by d."""
    groups = group_by(sorted(rows, key=lambda r: sort_number(r.get("d"))), "route", "ranks")
    return dict(sorted(groups.items(), key=lambda item: (item[0][0], sort_number(item[0][1]))))


def plot_kernels(series, path):
    """Fraction of the DGEMM rate against d, one line per route; DGEMM rate in the legend."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    drawn = False
    ds = set()
    for (route, ranks), group in series.items():
        dgemm = [v for v in column(group, "dgemm_gflops_per_rank") if finite(v)]
        rate = f"{min(dgemm):.1f}–{max(dgemm):.1f}" if dgemm else NA
        fraction = [100 * v for v in column(group, "fraction")]
        drawn |= plot_series(ax, column(group, "d"), fraction, logx=True, color=color(route),
                             marker="o", linewidth=1.5,
                             label=f"{route}, {plural(ranks, 'rank')}\n"
                                   f"(DGEMM {rate} GFLOP/s per rank)")
        ds.update(d for d in column(group, "d") if finite(d) and d > 0)
    finish_axes(ax, drawn, "d", "EFIM update rate (% of DGEMM)",
                "EFIM update throughput as a fraction of DGEMM", logx=True)
    if drawn:
        ax.minorticks_off()
        ax.set_xticks(sorted(ds), [fmt_count(d) for d in sorted(ds)])
        top = max([100 * v for v in column([r for g in series.values() for r in g], "fraction")
                   if finite(v)] + [100])
        ax.set_ylim(0, top * 1.05)
    legend_outside(ax)
    save(fig, path)


def kernels_report(rows, ctx):
    """Kernel plot, table and the README's fraction range per route."""
    series = kernel_series(rows)
    plot_kernels(series, ctx.path("kernels.png"))
    table = [[fmt_count(r.get("d")), r.get("route", ""), fmt_plain(r.get("ranks")),
              fmt_plain(r.get("batch")), fmt_seconds(r.get("seconds_per_step")),
              fmt(r.get("gflops_per_rank"), ".1f"), fmt(r.get("dgemm_gflops_per_rank"), ".1f"),
              fmt_percent(r.get("fraction")),
              fmt_bytes(r.get("bytes_per_step")), fmt_bytes(r.get("model_bytes_per_step"))]
             for r in sorted(rows, key=lambda r: (sort_number(r.get("d")), r.get("route", ""),
                                                   sort_number(r.get("ranks"))))]
    summary = md_table(["d", "route", "ranks", "batch", "s / step", "GFLOP/s per rank",
                        "DGEMM GFLOP/s per rank", "fraction of DGEMM", "bytes / step",
                        "model bytes / step"], table, "rlrrrrrrrr")
    summary += ["", "![EFIM update rate as a fraction of DGEMM](kernels.png)"]
    ranges = []
    for (route, ranks), group in series.items():
        pairs = [(r["d"], 100 * r["fraction"]) for r in group
                 if finite(r.get("d")) and finite(r.get("fraction"))]
        if pairs:
            ranges.append(f"{route} ({plural(ranks, 'rank')}) "
                          f"{min(p[1] for p in pairs):.0f}–{max(p[1] for p in pairs):.0f} % "
                          f"over d = {fmt_count(min(p[0] for p in pairs))}–"
                          f"{fmt_count(max(p[0] for p in pairs))}")
    readme = ["- **EFIM kernels** (update rate as a fraction of the DGEMM rate measured in the "
              "same run): " + ("; ".join(ranges) if ranges else NA) + "."]
    return summary, readme


# ---------------------------------------------------------------------------------------------
# Assembling summary.md and the README block
# ---------------------------------------------------------------------------------------------

# key (for setting.<key>), title, CSV, its text columns, report function.
SECTIONS = [
    ("fmnist", "Fashion-MNIST hyper-cleaning", "fmnist.csv", {"method"}, fmnist_report),
    ("budget", "Fashion-MNIST hyper-cleaning under a solver-time budget", "budget.csv", {"method"},
     budget_report),
    ("hpo", "Hyperparameter optimisation: logistic regression with per-feature L2", "hpo.csv",
     {"dataset", "method"}, hpo_report),
    ("accuracy", "Hypergradient accuracy against the exact hypergradient", "accuracy.csv",
     {"problem", "method", "param", "value"}, accuracy_report),
    ("scaling", "Strong and weak scaling", "scaling.csv", {"kind", "estimator", "route"},
     scaling_report),
    ("model", "Performance model", "model.csv", {"kind", "route"}, model_report),
    ("kernels", "EFIM kernel efficiency", "kernels.csv", {"route"}, kernels_report),
]


def build_section(ctx, key, title, csv_name, text_columns, report):
    """Run one section's report, or say that it was not run when its CSV is missing or empty."""
    rows = read_csv(ctx.path(csv_name), text_columns)
    if not rows:
        reason = "missing" if rows is None else "has no data rows"
        print(f"report.py: {csv_name} {reason}: section '{title}' skipped", file=sys.stderr)
        return Section(title, [f"This section was {NOT_RUN} ({csv_name} {reason})."],
                       [f"- **{title}**: {NOT_RUN}."])
    if "wall_time" in rows[0] and TIME not in rows[0]:
        print(f"report.py: {csv_name} has no {TIME} column (written before the solver clock): "
              f"its times show as missing until section '{key}' is run again", file=sys.stderr)
    settings = sentence(ctx.get(f"setting.{key}", "not recorded in meta.txt")) + "."
    summary, readme = report(rows, ctx)
    while summary and not summary[-1]:
        summary.pop()
    return Section(title, [f"Settings: {settings}", ""] + summary, readme)


def section_runs(ctx):
    """Lines saying when and at which commit each section was measured (sections can be rerun
    alone; meta.txt keys run.<section>)."""
    runs = sorted((k[4:], v) for k, v in ctx.meta.items() if k.startswith("run.") and v)
    if not runs:
        return []
    return (["Sections measured: " + "; ".join(f"{name} {when}" for name, when in runs) + ".",
             ""])


def write_summary(ctx, sections):
    """RESULTS_DIR/summary.md: provenance, the note on timings, then every section."""
    quick = " Run with `--quick` (short check)." if ctx.get("quick", "0") == "1" else ""
    lines = ["# Benchmark suite results", "",
             f"Machine: {sentence(ctx.get('machine'))}. Last invocation: {ctx.get('date')}, "
             f"commit {ctx.get('commit')}, command `{ctx.get('command')}`. "
             f"Ranks: {ctx.get('ranks')}.{quick}", ""] + section_runs(ctx) + [
             "Timings are medians over seeds or repeats, each section measured in one run on a "
             "shared 2-core machine: compare them as ratios within a section, not as absolute "
             "speeds.", ""]
    for section in sections.values():
        lines += [f"## {section.title}", ""] + section.summary + [""]
    with open(ctx.path("summary.md"), "w") as handle:
        handle.write("\n".join(lines).rstrip("\n") + "\n")


def readme_block(ctx, sections):
    """The README's results section: provenance line, Fashion-MNIST tables and plot, then one
    line per other headline."""
    runs = {k[4:]: v for k, v in ctx.meta.items() if k.startswith("run.") and v}
    # Each run line ends "..., N min[, --quick]": the whole suite takes their sum.
    total = sum(int(m.group(1)) for m in (re.search(r"(\d+) min", v) for v in runs.values()) if m)
    duration = f"about {total} minutes; " if total else ""
    quick = (" Some sections ran with `--quick`: not numbers to quote."
             if any("--quick" in v for v in runs.values()) else "")
    measured = "; ".join(f"{name}: {when}" for name, when in sorted(runs.items()))
    intro = (f"Produced by `bench/suite.sh` on {sentence(ctx.get('machine'))} (sections "
             f"measured: {measured or 'unknown'}); rerun with `bench/suite.sh` "
             f"({duration}`bench/suite.sh --quick` for a short check).{quick} Full tables and "
             f"plots: {ctx.from_readme('summary.md')}.")
    headlines = [line for key in ("budget", "hpo", "accuracy", "scaling", "kernels")
                 for line in sections[key].readme]
    return [intro, ""] + sections["fmnist"].readme + [""] + headlines


def update_readme(path, block):
    """Replace the lines between the markers of the README with block, creating the README
    (a title and the markers) if it does not exist; False (and a message) if it exists without
    the markers."""
    if not os.path.exists(path):
        with open(path, "w") as handle:
            handle.write(f"# Benchmark results\n\n{BEGIN_MARKER}\n{END_MARKER}\n")
        print(f"report.py: created {path}", file=sys.stderr)
    with open(path) as handle:
        lines = handle.read().splitlines()
    stripped = [line.strip() for line in lines]
    if BEGIN_MARKER not in stripped or END_MARKER not in stripped \
            or stripped.index(BEGIN_MARKER) > stripped.index(END_MARKER):
        print(f"report.py: error: {path} needs the lines '{BEGIN_MARKER}' and '{END_MARKER}' "
              f"(in that order) around the results section", file=sys.stderr)
        return False
    begin, end = stripped.index(BEGIN_MARKER), stripped.index(END_MARKER)
    new = lines[:begin + 1] + [""] + block + [""] + lines[end:]
    with open(path, "w") as handle:
        handle.write("\n".join(new) + "\n")
    return True


def main(argv):
    """Build every section, write summary.md, update the README; the exit status."""
    if len(argv) != 3:
        print(f"usage: {argv[0]} RESULTS_DIR README_PATH", file=sys.stderr)
        return 2
    ctx = Context(argv[1], argv[2])
    if not os.path.isdir(ctx.results_dir):
        print(f"report.py: error: {ctx.results_dir} is not a folder", file=sys.stderr)
        return 1
    sections = {spec[0]: build_section(ctx, *spec) for spec in SECTIONS}
    write_summary(ctx, sections)
    if not update_readme(ctx.readme_path, readme_block(ctx, sections)):
        return 1
    print(f"report.py: wrote {ctx.path('summary.md')}, the plots, and the results section of "
          f"{ctx.readme_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
