#!/usr/bin/env bash
# Weak scaling of the outer step: n_train = 20,000 rows per rank on 1, 2 and 4 ranks (synthetic
# 784 x 10 hyper-cleaning data, 5,000 validation and 10,000 test rows), the main job's settings
# (jobs/hyperclean_fmnist.cfg) with --eval-every 0, for each --cross-rows mode; all runs of a
# repeat side by side, the order rotated. Solver seconds per outer step (outer steps 1 to 10),
# medians over the repeats. This machine has 2 cores: the 4-rank runs are oversubscribed and
# marked so; their times say little about a cluster.
# Writes bench/results/weak.csv and weak.md.
# usage: bench/weak.sh [repeats] [ranks] [modes]   (defaults: 5 "1 2 4" "all trajectory")
source "$(dirname "$0")/common.sh"
R=${1:-5}
ranks=${2:-"1 2 4"}
modes=${3:-"all trajectory"}
per=20000
steps=10
o=$work/weak.h5
csv=$results/weak.csv
cores=$(nproc)
for P in $ranks; do
  n=$((per * P))
  scale_data "$n" || exit 1
done
echo "ranks,n_train,mode,repeat,seconds_per_outer_step" >"$csv"
runs=()
for P in $ranks; do for m in $modes; do runs+=("$P:$m"); done; done
for r in $(seq 1 "$R"); do
  for i in "${!runs[@]}"; do
    run=${runs[$(((i + r) % ${#runs[@]}))]}
    P=${run%%:*} m=${run#*:}
    n=$((per * P))
    sec=$(main_job_step "$P" "$n" $steps "$o" --cross-rows "$m") || exit 1
    echo "$P,$n,$m,$r,$sec" >>"$csv"
  done
done
{
  echo "# Weak scaling of the outer step"
  echo
  echo "$(machine_record) $R repeats, medians; \`bench/weak.sh $R \"$ranks\" \"$modes\"\`."
  echo "$per training rows per rank (synthetic 784 x 10 hyper-cleaning), main job settings,"
  echo "evaluation off. Ranks above the $cores cores are oversubscribed (marked *)."
  echo
  $python - "$csv" "$cores" "$per" <<'PY'
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cores = int(sys.argv[2])
ranks = sorted({int(r["ranks"]) for r in rows})
modes = list(dict.fromkeys(r["mode"] for r in rows))
med = lambda P, m: st.median(float(r["seconds_per_outer_step"]) for r in rows
                             if int(r["ranks"]) == P and r["mode"] == m)
print("| ranks | n_train | " + " | ".join(f"{m}: solver s / step (vs 1 rank)" for m in modes) + " |")
print("|---|---|" + "---|" * len(modes))
for P in ranks:
    mark = "*" if P > cores else ""
    cells = [f"{med(P, m):.4f} ({med(P, m) / med(ranks[0], m):.2f}x)" for m in modes]
    print(f"| {P}{mark} | {int(sys.argv[3]) * P:,} | " + " | ".join(cells) + " |")
PY
} >"$results/weak.md"
cat "$results/weak.md"
