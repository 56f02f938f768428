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
