# Shared set-up of the suite's sections (sourced after bench/common.sh): where results go,
# quick mode, and helpers that turn output files into CSV rows.
out=${NHGD_SUITE_OUT:-$results/suite}
quick=${NHGD_SUITE_QUICK:-0}
mkdir -p "$out"
set -o pipefail # a failed step inside a pipe into a CSV stops the section
P=${NHGD_SUITE_RANKS:-2}
cores=$(nproc)

# pick FULL QUICK: the value for this mode.
pick() { if [ "$quick" = 1 ]; then echo "$2"; else echo "$1"; fi; }

# fmnist_data SEED CORRUPTION [extra data options]: path of a Fashion-MNIST protocol file,
# written on first use.
fmnist_data() {
  local seed=$1 corr=$2
  shift 2
  local tag
  tag=$(echo "$*" | tr -c 'a-zA-Z0-9\n' '_')
  local f=$work/fmnist_s${seed}_c${corr}${tag}.h5
  [ -f "$f" ] || "$nhgd" data fashion-mnist --seed "$seed" --corruption "$corr" "$@" \
    --output "$f" >/dev/null || exit 1
  echo "$f"
}

# history_rows FILE PREFIX COLUMNS: one CSV line per outer step of an output file, PREFIX
# then the /history columns named (comma separated), step counted from 1.
history_rows() {
  $python - "$@" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
prefix, cols = sys.argv[2], sys.argv[3].split(",")
h = f["history"]
for i in range(len(h["step"])):
    vals = [str(int(h["step"][i]) + 1) if c == "step" else repr(float(h[c][i])) for c in cols]
    print(prefix + "," + ",".join(vals))
PY
}

# accuracy_runs CSV "METHODS" "SEEDS" ARGS...: for every seed and method, the job in $cfg on
# $P ranks with the method's options ${est[METHOD]} and ARGS, $K outer steps, on that seed's
# Fashion-MNIST protocol file; one CSV row per outer step (method, seed, step, wall time,
# solver time, test accuracy, validation loss). Time to accuracy is read on the solver time:
# the method's own work, without the test evaluations (docs/usage.md, three clocks).
accuracy_runs() {
  local csv=$1 methods=$2 seeds=$3 s m data o=$work/accuracy_runs.h5
  shift 3
  echo "method,seed,step,wall_time,solver_time,test_acc,val_loss" >"$csv"
  for s in $seeds; do
    data=$(fmnist_data "$s" 0.5) || exit 1
    for m in $methods; do
      # shellcheck disable=SC2086
      nhgd_run "$P" run --config "$cfg" --data "$data" --seed "$s" "$@" ${est[$m]} \
        --outer-steps "$K" --output "$o"
      history_rows "$o" "$m,$s" step,wall_time,solver_time,test_acc,val_loss >>"$csv" || exit 1
    done
  done
}

# nhgd_run P ARGS...: the solver on P ranks, quiet; stops the suite on failure.
nhgd_run() {
  local np=$1
  shift
  mpirun_n "$np" "$nhgd" "$@" --log-level 1 || {
    echo "suite: nhgd $* failed" >&2
    exit 1
  }
}
