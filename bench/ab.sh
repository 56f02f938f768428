#!/usr/bin/env bash
# Two builds of the program side by side: the same run with binary A and binary B, alternated
# R times (A B A B ...) so that both see the same machine load, and the median of each over
# the repeats of seconds per outer step (from the second outer step on) and of each timing
# stage (the slowest rank's seconds per outer step). For before-and-after measurements of a
# performance change; writes results/ab_NAME.md and .csv.
# usage: bench/ab.sh NAME NHGD_A NHGD_B RANKS REPEATS -- run options...
source "$(dirname "$0")/common.sh"
[ $# -ge 6 ] && [ "$6" = "--" ] || {
  echo "usage: bench/ab.sh NAME NHGD_A NHGD_B RANKS REPEATS -- run options..." >&2
  exit 2
}
name=$1 bin_a=$2 bin_b=$3 P=$4 R=$5
shift 6
for b in "$bin_a" "$bin_b"; do
  [ -x "$b" ] || {
    echo "bench/ab.sh: $b is not an executable" >&2
    exit 2
  }
done
csv=$results/ab_$name.csv
stages="inner_grad allreduce curvature solve hypergrad eval"
echo "binary,repeat,seconds_per_outer_step,$(echo $stages | tr ' ' ',')" >"$csv"
o=$work/ab_$name.h5
for r in $(seq 1 "$R"); do
  for side in A B; do
    bin=$bin_a
    [ $side = B ] && bin=$bin_b
    mpirun_n "$P" "$bin" run "$@" --output "$o" --log-level 1 >/dev/null || {
      echo "bench/ab.sh: the run with $bin failed" >&2
      exit 1
    }
    $python - "$o" "$side,$r" $stages >>"$csv" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
w = f["history/wall_time"][()]
K = len(w)
t = f["timing"]
names = t.attrs["stages"]
names = (names.decode() if isinstance(names, bytes) else str(names)).split(",")
row = [sys.argv[2], "%.4f" % ((w[-1] - w[0]) / (K - 1) if K > 1 else w[0])]
row += ["%.4f" % (t["max"][names.index(s)] / K) for s in sys.argv[3:]]
print(",".join(row))
PY
  done
done
{
  echo "# A/B: $name"
  echo
  machine_record
  echo
  echo "Command: \`bench/ab.sh $name $bin_a $bin_b $P $R -- $*\`"
  echo
  $python - "$csv" <<'PY'
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cols = [c for c in rows[0] if c not in ("binary", "repeat")]
med = {s: {c: st.median(float(r[c]) for r in rows if r["binary"] == s) for c in cols} for s in "AB"}
print("Medians over %d alternated repeats; seconds per outer step (stages: slowest rank)." %
      len([r for r in rows if r["binary"] == "A"]))
print()
print("| | " + " | ".join(cols) + " |")
print("|---|" + "---:|" * len(cols))
for s in "AB":
    print("| %s | " % s + " | ".join("%.4f" % med[s][c] for c in cols) + " |")
print("| B / A | " + " | ".join("%.3f" % (med["B"][c] / med["A"][c]) if med["A"][c] > 0 else "-"
                                 for c in cols) + " |")
PY
} >"$results/ab_$name.md"
cat "$results/ab_$name.md"
