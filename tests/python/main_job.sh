#!/usr/bin/env bash
# The main job from Python (examples/python/main_job.py, which also makes the input file)
# equals the program's run of the same configuration on the same data bit for bit, and so does
# nhgd.hypergradient the program's hypergrad.
# usage: main_job.sh NHGD MPIRUN NP PYTHON
set -u
nhgd=$1 mpirun=$2 np=$3 python=$4
here=$(cd "$(dirname "$0")/.." && pwd)
src=$(cd "$here/.." && pwd)
dir=python_main_job_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
export OPENBLAS_NUM_THREADS=1
launch=($mpirun --oversubscribe --allow-run-as-root -n "$np")
steps=12 # past the first refresh of the Kronecker factors (kfac-refresh = 10)
timeout 300 "${launch[@]}" "$python" "$src/examples/python/main_job.py" $steps >py.txt 2>&1 ||
  { echo "FAIL the Python example"; tail -20 py.txt; exit 1; }
grep -q "final test accuracy" py.txt || { echo "FAIL no final line"; tail -20 py.txt; exit 1; }
timeout 300 "${launch[@]}" "$nhgd" run --config "$src/jobs/hyperclean_fmnist.cfg" \
  --data run/fashion_mnist.h5 --output cli.h5 --outer-steps $steps --log-level 1 >cli.txt 2>&1 ||
  { echo "FAIL the program"; tail -20 cli.txt; exit 1; }
cols=()
for c in step val_loss val_acc test_loss test_acc inner_loss hypergrad_norm samples val_rows \
  val_loss_full; do
  cols+=("/history/$c")
done
"$python" "$here/tools/compare_h5.py" cli.h5 run/hyperclean_fmnist_py.h5 0 /theta /v /u \
  /hypergradient "${cols[@]}" || { echo "FAIL the outputs differ"; exit 1; }
echo "ok   the Python main job equals the program's ($np ranks, $steps outer steps)"

timeout 300 "${launch[@]}" "$nhgd" hypergrad --config "$src/jobs/hyperclean_fmnist.cfg" \
  --data run/fashion_mnist.h5 --output cli_hg.h5 --log-level 1 >cli.txt 2>&1 ||
  { echo "FAIL the program's hypergrad"; tail -20 cli.txt; exit 1; }
timeout 300 "${launch[@]}" "$python" -c "
import nhgd
o = nhgd.Options.from_file('$src/jobs/hyperclean_fmnist.cfg')
nhgd.hypergradient(nhgd.load('run/fashion_mnist.h5'), options=o, output='py_hg.h5', log_level=1)
" >py.txt 2>&1 || { echo "FAIL nhgd.hypergradient"; tail -20 py.txt; exit 1; }
"$python" "$here/tools/compare_h5.py" cli_hg.h5 py_hg.h5 0 /theta /v /u /hypergradient ||
  { echo "FAIL the hypergradients differ"; exit 1; }
echo "ok   nhgd.hypergradient equals the program's hypergrad ($np ranks)"

# metrics=: the lines the program's --metrics writes (the clocks aside), strict JSON; a file
# that cannot be written and a metrics path that is an input are errors on every rank.
timeout 300 "${launch[@]}" "$nhgd" run --config "$src/jobs/hyperclean_fmnist.cfg" \
  --data run/fashion_mnist.h5 --output cli_m.h5 --outer-steps 3 --metrics cli.jsonl \
  --log-level 1 >cli.txt 2>&1 || { echo "FAIL the program with --metrics"; tail -20 cli.txt; exit 1; }
metrics_run() { # PATH [DATA]: nhgd.solve on DATA with metrics=PATH, 3 outer steps
  timeout 300 "${launch[@]}" "$python" -c "
import nhgd
o = nhgd.Options.from_file('$src/jobs/hyperclean_fmnist.cfg')
nhgd.solve(nhgd.load('${2:-run/fashion_mnist.h5}'), options=o, outer_steps=3, metrics='$1',
           log_level=1)
print('solved')
" >py.txt 2>&1
}
metrics_run py.jsonl || { echo "FAIL nhgd.solve with metrics="; tail -20 py.txt; exit 1; }
"$python" - cli.jsonl py.jsonl <<'PY' || exit 1
import json, sys

def lines(path):
    out = []
    for text in open(path):
        # Strict: NaN and Infinity are not JSON.
        rec = json.loads(text, parse_constant=lambda c: sys.exit(f"FAIL {path}: {c} in {text}"))
        if "timing" in rec:
            rec = {"timing": sorted(rec["timing"]), "ranks": rec["ranks"]}
        for clock in ("wall_time", "solver_time", "eval_time"):
            rec.pop(clock, None)
        out.append(rec)
    return out

a, b = lines(sys.argv[1]), lines(sys.argv[2])
if a != b or len(a) != 4:
    sys.exit(f"FAIL the metrics differ ({len(a)} and {len(b)} lines):\n{a}\n{b}")
PY
echo "ok   metrics= writes the program's metrics lines ($np ranks)"
metrics_run /dev/full && { echo "FAIL metrics=/dev/full succeeded"; exit 1; }
[ "$(grep -c 'metrics file /dev/full: cannot write (No space left on device)' py.txt)" = "$np" ] ||
  { echo "FAIL metrics=/dev/full: not one message per rank"; cat py.txt; exit 1; }
grep -q solved py.txt && { echo "FAIL metrics=/dev/full: a rank went on"; exit 1; }
cp run/fashion_mnist.h5 input_copy.h5
sum=$(cksum <input_copy.h5)
metrics_run input_copy.h5 input_copy.h5 && { echo "FAIL metrics= naming the input succeeded"; exit 1; }
grep -q "metrics" py.txt || { echo "FAIL metrics= naming the input: no message"; cat py.txt; exit 1; }
[ "$(cksum <input_copy.h5)" = "$sum" ] || { echo "FAIL metrics= overwrote the input"; exit 1; }
echo "ok   metrics= on a full device and on the input file: an error on every rank, input intact"
