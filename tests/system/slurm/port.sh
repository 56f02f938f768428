#!/usr/bin/env bash
# Two clusters on one machine: with the default port 6817 (and 6818) held by another program,
# scripts/slurm-local.sh start must pick free ports and bring its cluster up (it always took
# 6817, and slurmctld failed with "Address already in use"). A cluster of its own in
# ./slurm-port, stopped at the end; the listener is ended by its PID.
# usage: port.sh NHGD SOURCE_DIR CLUSTER_DIR (CLUSTER_DIR unused: the test starts its own)
set -uo pipefail
SRC=$(realpath -- "$2")
W=$PWD/slurm-port
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
[ "$(id -u)" -eq 0 ] || { echo "skipped: starting a cluster needs root"; exit 77; }
rm -rf "$W" && mkdir -p "$W" || exit 1
# Hold 6817 and 6818 where they are free (held by someone else already is as good).
$python -c '
import socket, sys, time
held = []
for p in (6817, 6818):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("0.0.0.0", p)); s.listen(1); held.append(s)
    except OSError:
        pass
print("ready", flush=True)
time.sleep(600)
' >"$W/listener.txt" 2>&1 &
listener=$!
cleanup() {
  bash "$SRC/scripts/slurm-local.sh" stop "$W/cluster" >/dev/null 2>&1
  kill "$listener" 2>/dev/null
  wait "$listener" 2>/dev/null
}
trap cleanup EXIT
for ((i = 0; i < 50; ++i)); do
  grep -q ready "$W/listener.txt" 2>/dev/null && break
  sleep 0.1
done
fail=0
if ! env -u SLURM_LOCAL_PORT bash "$SRC/scripts/slurm-local.sh" start "$W/cluster" >"$W/start.txt" 2>&1; then
  echo "FAIL (port): the cluster did not start beside a listener on 6817"
  tail -n 30 "$W/start.txt" | sed 's/^/    /'
  exit 1
fi
port=$(sed -n 's/^SlurmctldPort=//p' "$W/cluster/slurm.conf")
if [ "$port" = 6817 ] || [ -z "$port" ]; then
  echo "FAIL (port): slurmctld port '$port' (want a free one, not 6817)"
  fail=1
elif ! SLURM_CONF=$W/cluster/slurm.conf sinfo -h -o %T | grep -qE "idle|mixed"; then
  echo "FAIL (port): sinfo does not answer on port $port"
  fail=1
else
  echo "ok   (port): 6817 taken, the cluster runs on $port and $((port + 1))"
fi
exit $fail
