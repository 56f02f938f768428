#!/usr/bin/env bash
# A real full disk (defects 1-3 of issue 12): a 2 MiB tmpfs filled until a given amount is
# free. Checkpoint and output writes on NP ranks must end on every rank within seconds with
# one clear message (no hang, no crash at exit), leave no temporary file, never harm a good
# file, and the last good checkpoint must resume bit-identically once there is room. A
# read-only checkpoint folder is found at start-up, and the metrics on a full disk are an
# error too (issue 22).
# Exits 77 (skipped) where the machine does not allow mounting a tmpfs.
# usage: full_disk.sh NHGD MPIRUN NP
set -u
nhgd=$1 mpirun=$2 np=$3
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=faults_full_disk_np$np
if mountpoint -q "$dir/mnt" 2>/dev/null; then umount "$dir/mnt"; fi
rm -rf "$dir" && mkdir -p "$dir/mnt" && cd "$dir" || exit 1
if ! mount -t tmpfs -o size=2m tmpfs mnt 2>mount.txt; then
  echo "SKIP: cannot mount a tmpfs here ($(head -1 mount.txt)); the fault-injection sweep covers the write failures"
  exit 77
fi
trap 'umount "$PWD/mnt" 2>/dev/null' EXIT
# shellcheck source=../tools/restart_lib.sh
source "$here/tools/restart_lib.sh"
disk=$PWD/mnt

# leave FREE KiB free on the tmpfs (what is in it besides the filler stays)
fill() {
  rm -f "$disk/fill"
  local avail
  avail=$(df -k --output=avail "$disk" | tail -1)
  [ "$avail" -gt "$1" ] && dd if=/dev/zero of="$disk/fill" bs=1k count=$((avail - $1)) \
    status=none 2>/dev/null
  sync
}
# run ARGS...: exit code in $rc, output in log.txt; a hang is exit 124
run() {
  : >log.txt
  timeout 60 $mpirun --oversubscribe --allow-run-as-root -n "$np" "$nhgd" "$@" >log.txt 2>&1
  rc=$?
}
# clean LABEL: the run just made ended cleanly (exit 0 or 1, one message, nothing left over)
clean() {
  local n
  n=$(grep -c "nhgd: error" log.txt)
  if [ "$rc" -eq 124 ]; then
    echo "FAIL $1: hang"
    failures=$((failures + 1))
  elif [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
    echo "FAIL $1: exit $rc (crash?)"
    grep -i "signal\|error" log.txt | head -5 | sed 's/^/    /'
    failures=$((failures + 1))
  elif [ "$rc" -eq 1 ] && [ "$n" -ne 1 ]; then
    echo "FAIL $1: exit 1 with $n error messages"
    failures=$((failures + 1))
  elif find "$disk" -name '*.tmp' | grep -q .; then
    echo "FAIL $1: temporary files left: $(find "$disk" -name '*.tmp' | tr '\n' ' ')"
    failures=$((failures + 1))
  else
    echo "ok   $1: exit $rc $(grep "nhgd: error" log.txt | cut -c1-150)"
  fi
}

"$nhgd" data synth --kind logistic --features 20 --n-train 400 --output in.h5 >/dev/null || exit 1
base=(run --data in.h5 --problem logreg --inner-steps 10 --batch 32 --outer-steps 4 --log-level 1)
run "${base[@]}" --output ref.h5
[ "$rc" -eq 0 ] || { echo "FAIL reference run"; exit 1; }

# Checkpoints on a disk with little room left, then resumed once there is room.
for free in 8 60 110 200 400; do
  rm -rf "$disk/ck"
  fill "$free"
  run "${base[@]}" --output out.h5 --checkpoint-dir "$disk/ck" --checkpoint-every 1 \
    --checkpoint-every-inner 5 --keep 2
  clean "checkpoints with $free KiB free on $np ranks"
  rm -f "$disk/fill"
  run "${base[@]}" --output out.h5 --checkpoint-dir "$disk/ck" --keep 2
  if [ "$rc" -ne 0 ]; then
    echo "FAIL resume after $free KiB free: exit $rc"
    tail -3 log.txt | sed 's/^/    /'
    failures=$((failures + 1))
  else
    same_tol 0 out.h5 ref.h5 "resumed from what the full disk left ($free KiB): bit-identical"
  fi
done

# The output on a full disk: a good older output survives, no out.h5.tmp is left.
rm -rf "$disk"/*
cp ref.h5 "$disk/out.h5"
for free in 4 8 16; do
  fill "$free"
  run "${base[@]}" --output "$disk/out.h5"
  clean "output with $free KiB free on $np ranks"
  if [ "$rc" -eq 1 ] && ! cmp -s ref.h5 "$disk/out.h5"; then
    echo "FAIL the good output was overwritten"
    failures=$((failures + 1))
  fi
done

# Issue 22 (3): the metrics on a full disk, with 0 KiB free from the start and with room for a
# few lines only: exit 1 and one message naming the file once the state is checkpointed (on
# the other disk), the metrics cut back to whole lines, and the run continues from that
# checkpoint once there is room, bit-identically.
long=("${base[@]}" --outer-steps 24)
run "${long[@]}" --output ref24.h5
[ "$rc" -eq 0 ] || { echo "FAIL reference run of 24 outer steps"; exit 1; }
for free in 0 4; do
  rm -rf "${disk:?}"/* ck
  fill "$free"
  run "${long[@]}" --output out.h5 --metrics "$disk/m.jsonl" --checkpoint-dir ck --log-level 2
  clean "metrics with $free KiB free on $np ranks"
  lines=$(wc -l <"$disk/m.jsonl")
  if [ "$rc" -ne 1 ] || ! grep -q "nhgd: error: metrics file $disk/m.jsonl: cannot write (No space left on device)" log.txt ||
    ! grep -q "checkpoint ck/ckpt-[0-9]*.h5 written" log.txt; then
    echo "FAIL metrics with $free KiB free: exit $rc, want 1 after a checkpoint and a message naming $disk/m.jsonl"
    failures=$((failures + 1))
  elif ! $python "$here/tools/check_jsonl.py" "$disk/m.jsonl" >json.txt; then
    echo "FAIL metrics with $free KiB free: not whole JSON lines: $(cat json.txt)"
    failures=$((failures + 1))
  else
    echo "ok   metrics with $free KiB free: $lines whole lines kept, the state checkpointed"
  fi
  rm -f "$disk/fill"
  run "${long[@]}" --output out.h5 --metrics "$disk/m.jsonl" --checkpoint-dir ck
  if [ "$rc" -ne 0 ]; then
    echo "FAIL resume after the metrics failed with $free KiB free: exit $rc"
    failures=$((failures + 1))
  else
    same_tol 0 out.h5 ref24.h5 "resumed after the metrics failed ($free KiB free): bit-identical"
  fi
done

# Issue 22 (12): a read-only --checkpoint-dir is found at start-up, before the data is read.
rm -rf "${disk:?}"/* && mkdir "$disk/ro"
if mount -o remount,ro "$disk" 2>/dev/null; then
  run "${base[@]}" --output out.h5 --checkpoint-dir "$disk/ro" --log-level 2
  mount -o remount,rw "$disk"
  if [ "$rc" -ne 1 ] || [ "$(grep -c "nhgd: error: checkpoint folder $disk/ro: cannot write in it (Read-only file system)" log.txt)" -ne 1 ] ||
    grep -q "outer 1/" log.txt; then
    echo "FAIL read-only --checkpoint-dir: exit $rc, want 1 at start-up with one message"
    tail -3 log.txt | sed 's/^/    /'
    failures=$((failures + 1))
  else
    echo "ok   read-only --checkpoint-dir found at start-up: $(grep -o 'error: .*' log.txt)"
  fi
fi
echo "$failures failures"
[ "$failures" -eq 0 ]
