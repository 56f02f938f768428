# Helpers shared by the stop-and-resume test scripts (sourced). Expects $here (tests/) and
# counts failures in $failures; commands log to log.txt in the current folder.
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3 # Debian's h5py lives there
export OPENBLAS_NUM_THREADS=1
failures=0

# same_tol TOL A B LABEL: the outputs A and B agree on theta, v, u and the history.
same_tol() {
  if $python "$here/tools/compare_h5.py" "$2" "$3" "$1" /theta /v /u /history/val_loss \
    /history/hypergrad_norm /history/samples >cmp.txt 2>&1; then
    echo "ok   $4"
  else
    echo "FAIL $4"
    sed 's/^/    /' cmp.txt
    failures=$((failures + 1))
  fi
}

# expect_exit CODE GOT LABEL
expect_exit() {
  if [ "$2" -ne "$1" ]; then
    echo "FAIL $3: exit $2, expected $1"
    tail -5 log.txt | sed 's/^/    /'
    failures=$((failures + 1))
  fi
}

# stop_resume NP OTHER LABEL "HALTS" ARGS...: with the caller's run() and base=(), a reference
# run, then for each halt a stop after that many inner steps, a second stop 5 later and a
# resume to the end, bit-identical to the reference; then a stop after 10 steps on NP ranks
# finished on OTHER ranks, within 1e-10. ARGS complete the configuration.
stop_resume() {
  local np=$1 other=$2 label=$3 halts=$4
  shift 4
  run "$np" "${base[@]}" "$@" --output "ref_$label.h5" ||
    { echo "FAIL reference $label"; failures=$((failures + 1)); return; }
  for halt in $halts; do
    rm -rf ck
    run "$np" "${base[@]}" "$@" --output a.h5 --checkpoint-dir ck --halt-after "$halt"
    expect_exit 75 $? "$label: first stop after $halt steps"
    run "$np" "${base[@]}" "$@" --output a.h5 --checkpoint-dir ck --halt-after 5
    expect_exit 75 $? "$label: second stop"
    run "$np" "${base[@]}" "$@" --output a.h5 --checkpoint-dir ck
    expect_exit 0 $? "$label: resume to the end"
    same_tol 0 a.h5 "ref_$label.h5" \
      "$label: stops after $halt and 5 more inner steps, bit-identical on $np ranks"
  done
  rm -rf ck
  run "$np" "${base[@]}" "$@" --output b.h5 --checkpoint-dir ck --halt-after 10
  expect_exit 75 $? "$label: stop before changing the rank count"
  run "$other" "${base[@]}" "$@" --output b.h5 --checkpoint-dir ck
  expect_exit 0 $? "$label: resume on $other ranks"
  same_tol 1e-10 b.h5 "ref_$label.h5" "$label: stopped on $np ranks, finished on $other, within 1e-10"
}

# kill_tree PID: SIGKILL a launcher and all its descendants (Open MPI may put the ranks in
# process groups of their own, so a group kill is not enough), reap it and wait until every
# one of them is gone.
kill_tree() {
  local pids p alive
  pids=$(_descendants "$1")
  # shellcheck disable=SC2086
  kill -9 $pids 2>/dev/null
  wait "$1" 2>/dev/null
  for _ in $(seq 1 100); do
    alive=0
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && return 0
    sleep 0.05
  done
}
_descendants() {
  local p
  echo "$1"
  for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do _descendants "$p"; done
}

# check_chaos_log LOG OUTPUT: the log of chaos_loop's starts (run at --log-level 2 or more) shows
# that they ran: a start's banner, the last start's completion ("final validation loss ...;
# output written to OUTPUT" after the last banner), at least one start resumed from a
# checkpoint, and no error. A log that is empty or cut short fails: an absent error proves
# nothing.
check_chaos_log() {
  local log=$1 out=$2 last_start done_at starts resumed
  [ -s "$log" ] || { echo "FAIL: $log is empty or missing: nothing shows that the run ran"; return 1; }
  starts=$(grep -c "INFO  nhgd .* run on [0-9]* ranks" "$log")
  last_start=$(grep -n "INFO  nhgd .* run on [0-9]* ranks" "$log" | tail -1 | cut -d: -f1)
  done_at=$(grep -n "INFO  final validation loss .*; output written to $out\$" "$log" | tail -1 |
    cut -d: -f1)
  resumed=$(grep -c "INFO  restarted from " "$log")
  if [ "$starts" -eq 0 ]; then
    echo "FAIL: $log shows no start of the run ($(wc -l <"$log") lines)"
    return 1
  fi
  if [ -z "$done_at" ] || [ "$done_at" -lt "$last_start" ]; then
    echo "FAIL: the last start in $log did not log its completion (output written to $out)"
    tail -3 "$log" | sed 's/^/    /'
    return 1
  fi
  if [ "$resumed" -eq 0 ]; then
    echo "FAIL: no start in $log resumed from a checkpoint (none written before a kill, or none read)"
    return 1
  fi
  if grep -Eq "error|ERROR" "$log"; then
    echo "FAIL: errors in the restarted runs:"
    grep -E "error|ERROR" "$log" | head
    return 1
  fi
  echo "ok   $starts starts logged, $resumed resumed from a checkpoint, the last one completed"
}

# chaos_loop KILLS PICK CMD...: start CMD in the background again and again (output appended to
# run.log, checkpoints expected in ck); while fewer than KILLS kills have landed, kill it
# (kill_tree) $at seconds after its start, $at set by calling the function PICK (in this shell,
# so that $RANDOM advances), else let it end. Returns 0 once a start ends with exit 0, 1 when
# one fails; $killed counts the kills. On a machine slower than the instants assume (a loaded
# one: CI runs its stages side by side) every kill could land before the first checkpoint, and
# no start would resume: after 3 kills with none on disk, each later instant is stretched 2,
# 4, 8, ... times until one is.
chaos_loop() {
  local kills=$1 pick=$2 pid rc attempt stretch=1 n
  shift 2
  killed=0
  for attempt in $(seq 1 60); do
    "$@" >>run.log 2>&1 &
    pid=$!
    if [ "$killed" -lt "$kills" ]; then
      $pick
      [ "$stretch" -eq 1 ] || at=$(awk -v a="$at" -v s="$stretch" 'BEGIN { printf "%.3f", a * s }')
      sleep "$at"
      if kill -0 "$pid" 2>/dev/null; then
        kill_tree "$pid"
        killed=$((killed + 1))
        n=$(ls ck 2>/dev/null | grep -c 'h5$')
        echo "kill $killed at attempt $attempt, ${at} s after the start; checkpoints: $n, leftovers: $(ls ck 2>/dev/null | grep -c 'tmp$')"
        [ "$n" -gt 0 ] || [ "$killed" -lt 3 ] || stretch=$((stretch * 2))
        continue
      fi
    fi
    wait "$pid"
    rc=$?
    [ "$rc" -eq 0 ] && { echo "run completed after $killed kills"; return 0; }
    echo "FAIL: a start after a kill exited $rc"
    tail -5 run.log
    return 1
  done
  echo "FAIL: not finished after 60 starts"
  return 1
}
