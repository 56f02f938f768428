#!/usr/bin/env bash
# --efim-samples K: with K = B the run is the unsubsampled one bit for bit; with K < B it
# differs from it (the option does something) and follows the same trajectory on 1 and NP
# ranks (1e-10). Routes gram, online and kfac. usage: efim_samples.sh NHGD MPIRUN NP
set -u
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3 # Debian's h5py lives there
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=efim_samples_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
export OPENBLAS_NUM_THREADS=1
run() { $mpirun --oversubscribe --allow-run-as-root -n "$@"; }
"$nhgd" data synth --kind logistic --n-train 211 --n-val 61 --n-test 30 --features 6 \
  --classes 3 --seed 8 --output d.h5 >/dev/null || exit 1
common=(run --data d.h5 --problem hyperclean --estimator nhgd --outer-steps 3 --inner-steps 6
  --batch 16 --inner-lr 0.5 --seed 4 --log-level 1)
status=0
for route in gram online kfac; do
  run "$np" "$nhgd" "${common[@]}" --efim-route $route --output all.$route.h5 || status=1
  run "$np" "$nhgd" "${common[@]}" --efim-route $route --efim-samples 16 --output kb.$route.h5 ||
    status=1
  echo "== $route: K = B equals the unsubsampled run bit for bit ($np ranks)"
  $python "$here/tools/compare_h5.py" kb.$route.h5 all.$route.h5 0 /theta /v /u \
    /history/val_loss || status=1
  run 1 "$nhgd" "${common[@]}" --efim-route $route --efim-samples 5 --output k5.np1.$route.h5 ||
    status=1
  run "$np" "$nhgd" "${common[@]}" --efim-route $route --efim-samples 5 \
    --output k5.np$np.$route.h5 || status=1
  echo "== $route: K = 5 < B on 1 and $np ranks"
  $python "$here/tools/compare_h5.py" k5.np$np.$route.h5 k5.np1.$route.h5 1e-10 /theta /v /u \
    /history/val_loss /history/hypergrad_norm || status=1
  echo "== $route: K = 5 changes u (the subsample is used)"
  # compare_h5.py: 0 the same, 1 differs, 2 could not compare (missing file, NaN, traceback).
  $python "$here/tools/compare_h5.py" k5.np1.$route.h5 all.$route.h5 1e-6 /u >cmp.txt 2>&1
  case $? in
  1) echo "ok   $route: u differs from the unsubsampled run" ;;
  0)
    echo "FAIL $route: u with K = 5 equals u with every sample"
    status=1
    ;;
  *)
    echo "FAIL $route: u with K = 5 and with every sample could not be compared:"
    sed 's/^/    /' cmp.txt
    status=1
    ;;
  esac
done
exit $status
