"""Markdown table of time to accuracy from a runs CSV (bench/suite/lib.sh accuracy_runs: one
row per outer step with method, seed, step, wall_time, solver_time, test_acc): per method the
median over seeds of the final and best test accuracy, the solver time of the first outer step
at or above each target (median over the seeds that reach it, and how many do) and the run's
wall seconds.
usage: accuracy_table.py RUNS.csv "METHODS" "TARGETS" [LABELS.tsv]
LABELS.tsv: optional lines "method<TAB>description" printed as a last column."""
import csv
import statistics
import sys


def main():
    runs = list(csv.DictReader(open(sys.argv[1])))
    methods = sys.argv[2].split()
    targets = [float(t) for t in sys.argv[3].split()]
    labels = {}
    if len(sys.argv) > 4:
        for line in open(sys.argv[4]):
            if "\t" in line:
                k, v = line.rstrip("\n").split("\t", 1)
                labels[k] = v
    med = statistics.median
    head = ["method", "final test accuracy", "best test accuracy"]
    head += [f"solver s to {t:g}" for t in targets] + ["run seconds"]
    if labels:
        head.append("options")
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1 - (1 if labels else 0)) + ("---|" if labels else ""))
    for m in methods:
        rs = [r for r in runs if r["method"] == m]
        seeds = sorted({r["seed"] for r in rs})
        if not seeds:
            continue
        fin, best, wall = [], [], []
        hits = {t: [] for t in targets}
        for s in seeds:
            h = sorted((r for r in rs if r["seed"] == s), key=lambda r: int(r["step"]))
            acc = [float(r["test_acc"]) for r in h]
            fin.append(acc[-1])
            best.append(max(acc))
            wall.append(float(h[-1]["wall_time"]))
            for t in targets:
                hit = [float(r["solver_time"]) for r in h if float(r["test_acc"]) >= t]
                if hit:
                    hits[t].append(hit[0])
        cells = [m, f"{med(fin):.4f}", f"{med(best):.4f}"]
        for t in targets:
            v = hits[t]
            cells.append(f"{med(v):.2f} ({len(v)}/{len(seeds)})" if v else f"- (0/{len(seeds)})")
        cells.append(f"{med(wall):.1f}")
        if labels:
            cells.append(f"`{labels.get(m, '')}`")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
