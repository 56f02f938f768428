#!/usr/bin/env bash
# What the curvature estimate costs on top of inner SGD: wall time of one outer step of the
# main job (Fashion-MNIST hyper-cleaning, d = 7,840) with `nhgd` per route, with and without
# overlap, divided by the same outer step with no estimator; bytes received per inner step.
# usage: bench/overhead.sh [ranks] [repeats]
source "$(dirname "$0")/common.sh"
P=${1:-2}
R=${2:-3}
data=$work/fashion_mnist.h5
[ -f "$data" ] || "$nhgd" data fashion-mnist --output "$data" >/dev/null
csv=$results/overhead.csv
out=$results/overhead.md
echo "estimator,route,overlap,repeat,seconds_per_outer_step,bytes_per_inner_step" >"$csv"
measure() { # estimator route overlap repeat
  local o=$work/overhead.h5
  mpirun_n "$P" "$nhgd" run --config "$root/jobs/hyperclean_fmnist.cfg" --data "$data" \
    --estimator "$1" --efim-route "$2" --overlap "$3" --outer-steps 3 --eval-every 0 \
    --log-level 1 --output "$o" || exit 1
  # Outer steps 2 and 3 (the first includes one-off warm-up); their mean.
  local sec bytes
  sec=$(h5get "$o" "(f['history/wall_time'][2] - f['history/wall_time'][0]) / 2")
  bytes=$(h5get "$o" "f.attrs['estimator_bytes_per_inner_step']")
  echo "$1,$2,$3,$4,$sec,$bytes" >>"$csv"
}
for r in $(seq 1 "$R"); do
  measure none auto 0 "$r"
  for route in gram accumulate online; do
    for ov in 0 1; do measure nhgd "$route" "$ov" "$r"; done
  done
done
$python - "$csv" "$P" >"$out.body" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
P = int(sys.argv[2])
def med(est, route, ov):
    v = [float(r["seconds_per_outer_step"]) for r in rows
         if r["estimator"] == est and r["route"] == route and r["overlap"] == ov]
    b = [float(r["bytes_per_inner_step"]) for r in rows
         if r["estimator"] == est and r["route"] == route and r["overlap"] == ov]
    return statistics.median(v), statistics.median(b)
base, _ = med("none", "auto", "0")
d, B, m, C = 7840, 256, 784, 10
w = 1 + m + C  # doubles per sample in transit (Kronecker form)
print(f"| no estimator | - | {base:.3f} | 1.0 | 0 | 0 |")
for route in ["gram", "accumulate", "online"]:
    for ov in ["0", "1"]:
        s, b = med("nhgd", route, ov)
        model = 8.0 * B * w * (P - 1) / P + (8.0 * d * B if route == "online" else 0.0)
        print(f"| nhgd | {route}, overlap {ov} | {s:.3f} | {s / base:.1f} | {b:.3g} | {model:.3g} |")
PY
{
  echo "# Overhead of the NHGD estimator over plain inner SGD"
  echo
  machine_record
  echo
  echo "Command: \`bench/overhead.sh $P $R\`. The main job (jobs/hyperclean_fmnist.cfg: d = 7,840,"
  echo "B = 256, T = 20 inner steps) on $P ranks; seconds per outer step = mean of outer steps 2"
  echo "and 3, median over $R repeats; the ratio divides by the same outer step with"
  echo "\`--estimator none\` (inner SGD, validation gradient, outer step, no curvature work)."
  echo "Bytes: payload each rank received from the estimator's collectives per inner step; the"
  echo "model is 8 B (1+m+C) (P-1)/P for the all-gather of (x_i, r_i) plus 8 d B for the online"
  echo "route's all-reduce, against 8 d^2 / P = $((7840 * 7840 * 8 / P / 1048576)) MiB per step for moving F itself."
  echo
  echo "| estimator | route | s / outer step | ratio to no estimator | bytes / inner step | model bytes |"
  echo "|---|---|---:|---:|---:|---:|"
  cat "$out.body"
} >"$out"
rm -f "$out.body"
cat "$out"
