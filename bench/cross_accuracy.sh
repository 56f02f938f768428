#!/usr/bin/env bash
# What the sampled cross term costs in accuracy: on the main job (jobs/hyperclean_fmnist.cfg,
# Fashion-MNIST hyper-cleaning, nhgd), at the v reached after 10 outer steps with
# --cross-rows all, the hypergradient h of one `nhgd hypergrad` with each --cross-rows mode
# against the full pass (all) with the same seed: the same inner trajectory and the same u,
# so the difference is the cross term's alone. trajectory uses the rows the inner loop drew
# (T B = 5,120 draws); end draws K rows at the last iterate. Relative error ||h - h_all|| /
# ||h_all|| and cosine, and the share of entries of h that are not zero, medians over seeds.
# Writes bench/results/cross_accuracy.csv and cross_accuracy.md.
# usage: bench/cross_accuracy.sh [ranks] [seeds] [K values for end]
#        (defaults: 2 "0 1 2 3 4" "1024 5120 20000")
source "$(dirname "$0")/common.sh"
NHGD_SUITE_OUT=$results source "$(dirname "$0")/suite/lib.sh"
P=${1:-2}
seeds=${2:-"0 1 2 3 4"}
Ks=${3:-"1024 5120 20000"}
cfg=$root/jobs/hyperclean_fmnist.cfg
w=$work/cross_accuracy
mkdir -p "$w"
data=$(fmnist_data 0 0.5) || exit 1
csv=$results/cross_accuracy.csv
# The v of the comparison: 10 outer steps of the full pass.
mpirun_n "$P" "$nhgd" run --config "$cfg" --data "$data" --cross-rows all --outer-steps 10 \
  --log-level 1 --output "$w/v10.h5" || exit 1
echo "mode,K,seed,rel_error,cosine,nonzero_share" >"$csv"
for s in $seeds; do
  one() { # name, then options
    local name=$1
    shift
    mpirun_n "$P" "$nhgd" hypergrad --config "$cfg" --data "$data" --v-from "$w/v10.h5" \
      --seed "$s" --log-level 1 "$@" --output "$w/$name.h5" || exit 1
  }
  one all --cross-rows all
  one trajectory --cross-rows trajectory
  for K in $Ks; do one "end$K" --cross-rows end --cross-samples "$K"; done
  for m in trajectory $(for K in $Ks; do echo "end$K"; done); do
    $python - "$w/all.h5" "$w/$m.h5" "$m" "$s" >>"$csv" <<'PY'
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["hypergradient"][:]
b = h5py.File(sys.argv[2], "r")["hypergradient"][:]
m = sys.argv[3]
mode, K = ("end", m[3:]) if m.startswith("end") else (m, "")
rel = np.linalg.norm(b - a) / np.linalg.norm(a)
cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
print(f"{mode},{K},{sys.argv[4]},{rel:.6g},{cos:.6g},{np.count_nonzero(b) / b.size:.6g}")
PY
  done
done

{
  echo "# Accuracy of the sampled cross term"
  echo
  echo "$(machine_record) $P ranks; \`bench/cross_accuracy.sh $P \"$seeds\" \"$Ks\"\`."
  echo "Main job (jobs/hyperclean_fmnist.cfg) at the v of 10 outer steps with the full pass;"
  echo "each mode against all with the same seed (same trajectory and u). Medians over the"
  echo "seeds $seeds."
  echo
  $python - "$csv" <<'PY'
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("| --cross-rows | K | rows touched per outer step | rel. error | cosine | non-zero share of h |")
print("|---|---|---|---|---|---|")
keys = list(dict.fromkeys((r["mode"], r["K"]) for r in rows))
for mode, K in keys:
    sel = [r for r in rows if r["mode"] == mode and r["K"] == K]
    med = lambda k: st.median(float(r[k]) for r in sel)
    touched = "5,120 draws (T B)" if mode == "trajectory" else f"{int(K):,}"
    print(f"| {mode} | {K or '-'} | {touched} | {med('rel_error'):.3f} | {med('cosine'):.3f} | "
          f"{med('nonzero_share'):.3f} |")
PY
} >"$results/cross_accuracy.md"
cat "$results/cross_accuracy.md"
