#!/usr/bin/env bash
# Suite section: a fixed budget of solver time (the method's own work, without the test
# evaluations, start-up and output; docs/usage.md, three clocks) per estimator on the main
# job. Each method runs the Fashion-MNIST protocol (jobs/hyperclean_fmnist.cfg, seed 0) with
# far more outer steps than it can take, evaluated on the test split after every outer step,
# and is stopped once past the budget; the metrics file (one line per outer step, flushed)
# gives test accuracy against solver time. Writes budget.csv and budget.md: accuracy at the
# budget, the best reached, and whether the end is within 0.005 of the best (no collapse).
source "$(dirname "$0")/../common.sh"
source "$(dirname "$0")/lib.sh"
budget=$(pick 120 15)
cfg=$root/jobs/hyperclean_fmnist.cfg
data=$(fmnist_data 0 0.5) || exit 1
declare -A est=(
  [nhgd]="--estimator nhgd"
  [nhgd-gram]="--estimator nhgd --efim-route gram --efim-samples 0"
  [cg]="--estimator cg --hvp-steps 10 --hvp-batch 2048"
  [neumann]="--estimator neumann --hvp-steps 20 --hvp-batch 2048 --neumann-eta 0.1"
  [soba]="--estimator soba --soba-rho 0.1"
)
csv=$out/budget.csv
echo "method,step,wall_time,solver_time,test_acc" >"$csv"
for m in nhgd nhgd-gram cg neumann soba; do
  rm -f "$work/budget.jsonl"
  # The launcher is stopped well after the budget (solver time runs behind wall time by the
  # start-up and the test evaluations); rows past the budget are dropped below.
  # shellcheck disable=SC2086
  timeout -s TERM $((budget + budget / 4 + 8)) mpirun --oversubscribe -n "$P" "$nhgd" run --config "$cfg" \
    --data "$data" --outer-steps 1000000 --log-level 1 ${est[$m]} \
    --metrics "$work/budget.jsonl" --output "$work/budget.h5" >/dev/null 2>&1
  $python - "$work/budget.jsonl" "$m" "$budget" >>"$csv" <<'PY' || exit 1
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "outer_step" in r and r["solver_time"] <= float(sys.argv[3]):
        print(f"{sys.argv[2]},{r['outer_step'] + 1},{r['wall_time']:.6f},"
              f"{r['solver_time']:.6f},{r['test_acc']!r}")
        n += 1
if n == 0:
    sys.exit(f"budget: no outer step of {sys.argv[2]} within the budget")
PY
done
$python - "$csv" "$budget" >"$out/budget.md" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"| method | outer steps in {sys.argv[2]} s of solver time | test accuracy at solver time "
      f"{sys.argv[2]} s | best | end within 0.005 of best |")
print("|---|---:|---:|---:|---|")
for m in dict.fromkeys(r["method"] for r in rows):
    acc = [float(r["test_acc"]) for r in rows if r["method"] == m]
    best = max(acc)
    print(f"| {m} | {len(acc)} | {acc[-1]:.4f} | {best:.4f} | "
          f"{'yes' if best - acc[-1] <= 0.005 else 'no'} |")
PY
cat "$out/budget.md"
echo "setting.budget=A budget of $budget s of solver time per method on the main job (jobs/hyperclean_fmnist.cfg, seed 0, $P ranks, test accuracy after every outer step): nhgd (the main job: kfac, 64 samples per step), nhgd-gram (${est[nhgd-gram]}), ${est[cg]}, ${est[neumann]}, ${est[soba]}. Accuracy at the budget is the last outer step finished within it; collapse = the end more than 0.005 below the best." >>"$out/meta.txt"
