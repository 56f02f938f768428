#!/usr/bin/env bash
# What the Python front end costs (issue: Python interface), side by side in one run, medians
# over repeats:
#   (a) the main job (jobs/hyperclean_fmnist.cfg on Fashion-MNIST) from Python (nhgd.solve)
#       against the program (`nhgd run`): solver time and wall time of the launch (interpreter
#       start and imports included); goal at most 1.02x;
#   (b) the numpy-defined logreg (examples/python/numpy_logreg.py) against the built-in logreg
#       per outer step (cg, same data), with the stages where the time goes;
#   (c) the torch MLP (nhgd.torch.TorchProblem, 784-256-10 tanh) against the built-in
#       mlp-hyperclean per outer step (the main job's nhgd estimator and --cross-rows
#       trajectory for both).
# (b) and (c) both run from Python, so the ratio is the problem's callbacks alone.
# Writes bench/results/python_overhead.csv and python_overhead.md (NHGD_BENCH_RESULTS elsewhere).
# usage: bench/python_overhead.sh [ranks] [repeats] [outer steps of (b) and (c)]
#   (defaults: 2 5 6; `bench/python_overhead.sh 2 1 2` with NHGD_BENCH_RESULTS set: a smoke run)
source "$(dirname "$0")/common.sh"
P=${1:-2}
R=${2:-5}
K=${3:-6}
cfg=$root/jobs/hyperclean_fmnist.cfg
data=$work/fashion_mnist.h5
[ -f "$data" ] || "$nhgd" data fashion-mnist --output "$data" >/dev/null
export PYTHONPATH=$build/python${PYTHONPATH:+:$PYTHONPATH}
$python -c "import nhgd" || { echo "python_overhead: the package nhgd is not built" >&2; exit 1; }
have_torch=1
$python -c "import torch" 2>/dev/null || have_torch=0
helper=$root/bench/python_overhead.py
csv=$results/python_overhead.csv
out=$results/python_overhead.md
echo "part,variant,repeat,metric,seconds" >"$csv"
now() { date +%s.%N; }
result_line() { sed -n 's/^RESULT //p' "$1"; }

main_job() { # variant repeat
  local o=$work/python_overhead_$1.h5 log=$work/python_overhead.log t0 t1
  t0=$(now)
  if [ "$1" = cli ]; then
    mpirun_n "$P" "$nhgd" run --config "$cfg" --data "$data" --output "$o" --log-level 1 \
      >"$log" 2>&1
  else
    mpirun_n "$P" "$python" "$helper" main "$data" "$cfg" "$o" >"$log" 2>&1
  fi || { tail -20 "$log"; exit 1; }
  t1=$(now)
  echo "main job,$1,$2,wall,$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" >>"$csv"
  echo "main job,$1,$2,solver_time,$(h5get "$o" "f['history/solver_time'][-1]")" >>"$csv"
}

per_step() { # part problem repeat
  local log=$work/python_overhead.log
  mpirun_n "$P" "$python" "$helper" step "$data" "$cfg" "$2" "$K" >"$log" 2>&1 ||
    { tail -20 "$log"; exit 1; }
  $python - "$1" "$2" "$3" "$(result_line "$log")" >>"$csv" <<'PY'
import json, sys
part, name, rep, rec = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
print(f"{part},{name},{rep},per_step,{rec['per_step']}")
for stage, sec in rec["stages"].items():
    print(f"{part},{name},{rep},stage {stage},{sec}")
PY
}

for r in $(seq 1 "$R"); do
  main_job cli "$r"
  main_job python "$r"
  per_step logreg logreg "$r"
  per_step logreg numpy-logreg "$r"
  if [ $have_torch = 1 ]; then
    per_step mlp mlp-hyperclean "$r"
    per_step mlp torch-mlp "$r"
  fi
done

$python - "$csv" "$have_torch" >"$out.body" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def med(part, variant, metric):
    vals = [float(r["seconds"]) for r in rows
            if (r["part"], r["variant"], r["metric"]) == (part, variant, metric)]
    return statistics.median(vals) if vals else float("nan")
print("## (a) The main job: Python against the program\n")
print("| metric | program (s) | Python (s) | ratio (goal <= 1.02) |")
print("|---|---|---|---|")
for metric, label in (("solver_time", "solver time"), ("wall", "wall time of the launch")):
    a, b = med("main job", "cli", metric), med("main job", "python", metric)
    print(f"| {label} | {a:.3f} | {b:.3f} | {b / a:.3f} |")
parts = [("logreg", "logreg", "numpy-logreg", "(b) logreg: numpy against built-in (cg)")]
if sys.argv[2] == "1":
    parts.append(("mlp", "mlp-hyperclean", "torch-mlp",
                  "(c) the MLP: torch against built-in mlp-hyperclean (nhgd)"))
else:
    print("\n(c) not measured: PyTorch is not installed.")
for part, builtin, mine, title in parts:
    print(f"\n## {title}\n")
    print("| seconds per outer step | built-in | Python problem | ratio |")
    print("|---|---|---|---|")
    a, b = med(part, builtin, "per_step"), med(part, mine, "per_step")
    print(f"| the step | {a:.4f} | {b:.4f} | {b / a:.2f} |")
    stages = []
    for r in rows:
        if r["part"] == part and r["metric"].startswith("stage ") and r["metric"] not in stages:
            stages.append(r["metric"])
    for st in stages:
        a, b = med(part, builtin, st), med(part, mine, st)
        if max(a, b) >= 1e-4:
            print(f"| {st[6:]} | {a:.4f} | {b:.4f} | {b / a if a > 0 else float('nan'):.2f} |")
PY
{
  echo "# Overhead of the Python front end and of problems written in Python"
  echo
  machine_record
  echo
  echo "Command: \`bench/python_overhead.sh $P $R $K\`, $P ranks, every variant in the same run,"
  echo "medians over $R repeats (per-repeat numbers in python_overhead.csv). (a) runs"
  echo "jobs/hyperclean_fmnist.cfg to its end with \`nhgd run\` and with \`nhgd.solve\` (the same"
  echo "options and data, the output file written by both); solver time is the output's last"
  echo "/history/solver_time, wall time that of the whole mpirun (Python: interpreter start and"
  echo "imports included). (b) and (c) run $K outer steps from Python with test evaluation off;"
  echo "seconds per outer step are the mean over steps 2..$K (the first holds one-off set-up),"
  echo "stage rows the slowest rank's seconds per outer step in each timing stage (all $K steps)."
  echo "(b): the main job's data with --problem logreg, cg (10 products), Adam 0.1; (c): the"
  echo "main job's options (--cross-rows trajectory among them) with --problem mlp-hyperclean"
  echo "--hidden 256, the torch model the same 784-256-10 tanh network (nhgd.torch.TorchProblem,"
  echo "float64, one torch thread per rank)."
  echo
  cat "$out.body"
} >"$out"
rm -f "$out.body"
echo "wrote $out"
