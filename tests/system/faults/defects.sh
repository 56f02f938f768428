#!/usr/bin/env bash
# The numbered defects of issue 12 that need no full disk, through the nhgd program on NP
# ranks: checkpoint positions never repeat and a kill between the two renames loses nothing
# (4); a checkpoint is bound to its data (5); --restart without --checkpoint-dir (6); a bad
# --output is found at start (7); checkpoints with a valid CRC but bad content are skipped
# for an older one (8); the smaller items (9).
# usage: defects.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=faults_defects_np$np
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
# shellcheck source=../tools/restart_lib.sh
source "$here/tools/restart_lib.sh"
run() { # args... (appends to log.txt; never hangs)
  timeout 120 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "$@" >>log.txt 2>&1
}
fail() {
  echo "FAIL $1"
  sed 's/^/    /' log.txt | tail -8
  failures=$((failures + 1))
}
ok() { echo "ok   $1"; }
# expect_msg CODE PHRASE LABEL -- nhgd args: exit CODE and PHRASE in the output
expect_msg() {
  local code=$1 phrase=$2 label=$3
  shift 4
  : >log.txt
  run "$@"
  local got=$?
  if [ "$got" -ne "$code" ] || ! grep -q -F -- "$phrase" log.txt; then
    fail "$label: exit $got (want $code), phrase '$phrase'"
  else
    ok "$label: exit $got: $(grep -F -- "$phrase" log.txt | head -1 | cut -c1-160)"
  fi
}

"$nhgd" data synth --kind logistic --features 20 --n-train 400 --seed 1 --output a.h5 \
  >/dev/null || exit 1
"$nhgd" data synth --kind logistic --features 20 --n-train 400 --seed 2 --output b.h5 \
  >/dev/null || exit 1
base=(run --data a.h5 --problem logreg --inner-steps 10 --batch 32 --outer-steps 4
  --log-level 2)

# (4) T = 10 with a checkpoint every 5 inner steps and every outer step: the one due at the
# last inner step and the one after the outer step used to share a name.
: >log.txt
run "${base[@]}" --output ref.h5
expect_exit 0 $? "reference run"
rm -rf ck
: >log.txt
run "${base[@]}" --output a4.h5 --checkpoint-dir ck --checkpoint-every 1 \
  --checkpoint-every-inner 5 --keep 20
expect_exit 0 $? "checkpointed run"
names=$(grep -o 'checkpoint [^ ]* written' log.txt | awk '{print $2}')
if [ -z "$names" ] || [ "$(echo "$names" | sort | uniq -d | wc -l)" -ne 0 ]; then
  fail "(4) a checkpoint name written twice: $(echo "$names" | sort | uniq -d | tr '\n' ' ')"
else
  ok "(4) $(echo "$names" | wc -l) checkpoints, no name written twice"
fi
same_tol 0 a4.h5 ref.h5 "(4) checkpointing changes nothing"
# A kill between the renames leaves the newest data file without its checksum: it is no
# checkpoint; the run continues from the one before, bit-identically.
rm -rf ck
: >log.txt
run "${base[@]}" --output a4.h5 --checkpoint-dir ck --checkpoint-every-inner 5 --keep 2 \
  --halt-after 27
expect_exit 75 $? "(4) stop after 27 inner steps"
newest=$(ls ck/ckpt-*.h5 | sort | tail -1)
older=$(ls ck/ckpt-*.h5 | sort | tail -2 | head -1)
rm -f "$newest.crc32"
: >log.txt
run "${base[@]}" --output a4.h5 --checkpoint-dir ck --keep 2
rc=$?
expect_exit 0 $rc "(4) resume after a kill between the renames"
grep -q "restarted from $older" log.txt || fail "(4) not restarted from the older $older"
same_tol 0 a4.h5 ref.h5 "(4) resumed from $older after an unpublished $newest: bit-identical"

# (5) the same shape, other data: refused, naming both files; also replaced in place.
rm -rf ck
: >log.txt
run "${base[@]}" --output o.h5 --checkpoint-dir ck --halt-after 13
expect_exit 75 $? "(5) stop"
expect_msg 1 "was written for the data in a.h5" "(5) other --data of the same shape" -- \
  run --data b.h5 --problem logreg --inner-steps 10 --batch 32 --outer-steps 4 \
  --output o.h5 --checkpoint-dir ck
grep -q "b.h5 holds other data" log.txt || fail "(5) the message names the new file"
cp a.h5 a_saved.h5 && cp b.h5 a.h5
expect_msg 1 "holds other data" "(5) data file replaced in place" -- "${base[@]}" --output o.h5 \
  --checkpoint-dir ck
cp a_saved.h5 a.h5
: >log.txt
run "${base[@]}" --output o.h5 --checkpoint-dir ck
expect_exit 0 $? "(5) the right data continues"
same_tol 0 o.h5 ref.h5 "(5) continued on its own data: bit-identical"

# (6) --restart without --checkpoint-dir
expect_msg 2 "option --restart sometimes needs --checkpoint-dir" "(6) --restart sometimes" -- \
  "${base[@]}" --output o.h5 --restart sometimes
expect_msg 2 "needs --checkpoint-dir" "(6) --restart FILE" -- "${base[@]}" --output o.h5 \
  --restart ck/ckpt-000000000040.h5
: >log.txt
NHGD_RESTART=sometimes run "${base[@]}" --output o.h5
rc=$?
[ "$rc" -eq 2 ] && grep -q "needs --checkpoint-dir" log.txt && ok "(6) NHGD_RESTART=sometimes" ||
  fail "(6) NHGD_RESTART=sometimes: exit $rc"

# (7) a bad --output is found before the run
mkdir -p outdir
for bad in outdir a.h5/x.h5; do
  expect_msg 1 "output $bad" "(7) --output $bad" -- "${base[@]}" --output "$bad"
  if grep -q "outer 1/" log.txt; then fail "(7) --output $bad: the run ran first"; fi
done

# (8) a valid CRC, bad content: skipped with a warning naming file and dataset, fallback to
# the next older checkpoint, bit-identical. damage REF CASE... on the checkpoints in ck8 of
# a run with the options in cfg8; a CASE is [GROUP/]NAME:HOW.
damage() {
  local ref=$1 case newest rc
  shift
  for case in "$@"; do
    rm -rf ck && cp -r ck8 ck
    newest=$(ls ck/ckpt-*.h5 | sort | tail -1)
    $python - "$newest" "$case" <<'PY' || { fail "(8) $case: could not damage"; continue; }
import sys, zlib, h5py, numpy as np
path, case = sys.argv[1], sys.argv[2]
name, how = case.split(":")
flip = None
with h5py.File(path, "r+") as f:
    group, leaf = name.rsplit("/", 1) if "/" in name else ("/", name)
    g = f[group]
    if how == "missing":  # a dataset or a group (/estimator is also a root attribute)
        del g[leaf]
    elif leaf in g.attrs:
        g.attrs[leaf] = np.float64("nan") if how == "nan" else np.int64(int(how))
    elif how == "flip":
        offset = g[leaf].id.get_chunk_info(0).byte_offset
        flip = offset
    else:
        data = np.asarray(g[leaf])
        del g[leaf]
        if how == "short":
            data = data[:-3]
        elif how == "nan":
            data = data.copy(); data[0] = np.nan
        else:
            data = np.full_like(data, float(how))
        g.create_dataset(leaf, data=data)
data = bytearray(open(path, "rb").read())
if flip is not None:  # one byte of the data: only the dataset's Fletcher32 sees it
    data[flip + 3] ^= 0x40
    open(path, "wb").write(data)
open(path + ".crc32", "w").write("%08x %d\n" % (zlib.crc32(data), len(data)))
PY
    : >log.txt
    run "${cfg8[@]}" --output o.h5 --checkpoint-dir ck --keep 5
    rc=$?
    local leaf=${case%%:*}
    leaf=${leaf##*/}
    if [ "$rc" -ne 0 ] || ! grep -q "skipping checkpoint.*$(basename "$newest").*$leaf" log.txt; then
      fail "(8) $case: exit $rc, want 0 and a warning naming $(basename "$newest") and $leaf"
    else
      ok "(8) $case: $(grep -o 'skipping checkpoint.*' log.txt | head -1 | cut -c1-150)"
      same_tol 0 o.h5 "$ref" "(8) $case: finished from the older checkpoint, bit-identical"
    fi
  done
}
rm -rf ck8
: >log.txt
cfg8=("${base[@]}")
run "${cfg8[@]}" --output o.h5 --checkpoint-dir ck8 --checkpoint-every-inner 3 --keep 5 \
  --halt-after 17
expect_exit 75 $? "(8) stop"
damage ref.h5 outer_step:-3 inner_step:99 complete:7 theta:nan adam_s:-1 history:short \
  adam_m:missing elapsed:nan theta:flip
# Issue 22 (15): a whole group missing (the file opens, the checksum holds) is skipped too.
damage ref.h5 estimator:missing config:missing
# The K-FAC factors kept across inner loops (--kfac-refresh): the newest checkpoint is inside
# an inner loop that reuses them (outer step 1, inner step 7).
rm -rf ck8
: >log.txt
cfg8=("${base[@]}" --efim-route kfac --kfac-refresh 2)
run "${cfg8[@]}" --output ref8.h5
expect_exit 0 $? "(8) kfac-refresh reference run"
run "${cfg8[@]}" --output o.h5 --checkpoint-dir ck8 --checkpoint-every-inner 3 --keep 5 \
  --halt-after 17
expect_exit 75 $? "(8) kfac-refresh stop"
damage ref8.h5 estimator/kfac_have:7 estimator/kfac_fresh:-1 estimator/kfac_keptTrF:nan \
  estimator/kfac_keptG:nan estimator/kfac_keptA:short estimator/kfac_keptA:missing \
  estimator/kfac_A:nan estimator/kfac_G:nan estimator/D:nan

# Issue 22 (3): a metrics line that cannot be written (/dev/full: no space left) is an error
# naming the file, exit 1 on every rank, after the state is checkpointed; the run then
# continues from that checkpoint, bit-identically.
rm -rf ck
expect_msg 1 "metrics file /dev/full: cannot write (No space left on device)" \
  "(22.3) --metrics on a full device" -- "${base[@]}" --output m3.h5 --metrics /dev/full \
  --checkpoint-dir ck
[ "$(grep -c "nhgd: error" log.txt)" -eq 1 ] || fail "(22.3) one error message"
grep -q "the state is checkpointed" log.txt && grep -q "checkpoint ck/ckpt-000000000010.h5 written" \
  log.txt || fail "(22.3) stopped after a checkpoint at the first failed line"
: >log.txt
run "${base[@]}" --output m3.h5 --metrics m3.jsonl --checkpoint-dir ck
expect_exit 0 $? "(22.3) continued after the failed metrics"
same_tol 0 m3.h5 ref.h5 "(22.3) continued from the checkpoint of the failed metrics: bit-identical"
expect_msg 1 "metrics file /dev/full: cannot write" "(22.3) without --checkpoint-dir" -- \
  "${base[@]}" --output m3.h5 --metrics /dev/full
# Issue 22 (12): a stop (exit 75) says that --output now holds the partial state.
rm -rf ck
expect_msg 75 "output o12.h5 now holds the state after 1 of 4 outer steps" "(22.12) stop" -- \
  "${base[@]}" --output o12.h5 --checkpoint-dir ck --halt-after 13

# (9) smaller items
mkdir -p cfgdir
expect_msg 2 "is a folder" "(9) --config on a folder" -- run --config cfgdir
printf 'batch = 8\nbatch = 16\n' >dup.cfg
expect_msg 0 "--batch is set again (first on line 1)" "(9) duplicate key in a config file" -- \
  "${base[@]}" --config dup.cfg --outer-steps 1 --output o.h5
[ "$(grep -c "set again" log.txt)" -eq 1 ] || fail "(9) the duplicate warning printed once"
printf 'batch = 8\001\377\n' >bin.cfg
expect_msg 2 "not a text line (byte 0x01 at column 10)" "(9) binary bytes in a config file" -- \
  run --config bin.cfg
if LC_ALL=C grep -q $'\377' log.txt; then fail "(9) raw bytes echoed"; fi
expect_msg 2 "option --grid-rows: 3 does not divide the number of ranks" "(9) --grid-rows 3" -- \
  run --data a.h5 --problem logreg --estimator exact --grid-rows 3 --output o.h5
: >log.txt
# Under 400 MB of address space it must still refuse with its own message (AddressSanitizer
# builds cannot run under such a limit: there the message alone is checked).
limit=400000
ldd "$nhgd" 2>/dev/null | grep -q libasan && limit=unlimited
( ulimit -v $limit; "$nhgd" data synth --n-train 100000000 --features 1000 --output big.h5 ) \
  >>log.txt 2>&1
rc=$?
if [ "$rc" -ne 1 ] || ! grep -q "GiB in memory" log.txt; then
  fail "(9) data synth with absurd sizes: exit $rc"
else
  ok "(9) data synth refuses absurd sizes before allocating: $(grep -o 'synth:.*' log.txt | cut -c1-100)"
fi

echo "$failures failures"
[ "$failures" -eq 0 ]
