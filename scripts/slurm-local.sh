#!/usr/bin/env bash
# Start, stop or query a real single-node SLURM cluster whose every file lives under one directory.
#
# usage: scripts/slurm-local.sh {start|stop|status} DIR
#
#   start   install slurmctld, slurmd, slurm-client and munge if missing (apt-get), write
#           DIR/slurm.conf, start munged, slurmctld and slurmd (no systemd, nothing in /etc),
#           wait until the node is idle, and print the line to paste into a shell:
#               export SLURM_CONF=DIR/slurm.conf
#           Calling it again while the cluster runs only prints that line.
#   stop    cancel every job of the cluster, then stop the daemons by the PIDs in their pid
#           files (never by name). Safe to call twice, or on a directory with no cluster.
#   status  say which daemons run and show sinfo; exit 0 when all three run, 3 otherwise.
#
# Layout of DIR: slurm.conf, plugstack.conf, env (the export line), munge/ (key, socket, pid,
# log, seed), state/ (slurmctld state), spool/ (slurmd), run/ (pid files), log/ (daemon logs
# and jobcomp.txt: one line per finished job with its state and exit code).
# Environment: SLURM_LOCAL_PORT (slurmctld port, slurmd uses the next one; default: the
# first pair from 6817 on that nothing listens on, so that clusters of two builds or two
# clones on one machine do not collide; the port chosen is in DIR/slurm.conf),
# SLURM_LOCAL_CPUS (CPUs of the node; default 2), SLURM_LOCAL_WAIT (seconds to wait for the
# node to be idle; default 60).
set -uo pipefail

prog=$(basename "$0")
die() {
  echo "$prog: error: $*" >&2
  exit 1
}
usage() {
  echo "usage: $prog {start|stop|status} DIR" >&2
  exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
[ -n "$2" ] || usage
dir=$(realpath -m -- "$2")
conf=$dir/slurm.conf
port=${SLURM_LOCAL_PORT:-}
cpus=${SLURM_LOCAL_CPUS:-2}
wait_max=${SLURM_LOCAL_WAIT:-60}
munge_sock=$dir/munge/munge.socket

# PID of a daemon from its pid file, printed only when that process is alive and is ours: its
# command line names a path under DIR (guards against a stale file whose PID was reused).
daemon_pid() { # daemon_pid PIDFILE
  local f=$1 pid
  [ -s "$f" ] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/" || return 1
  echo "$pid"
}
munged_pid() { daemon_pid "$dir/munge/munged.pid"; }
slurmctld_pid() { daemon_pid "$dir/run/slurmctld.pid"; }
slurmd_pid() { daemon_pid "$dir/run/slurmd.pid"; }

# Stop one daemon: SIGTERM, up to 20 s for it to exit, then SIGKILL.
stop_daemon() { # stop_daemon NAME PIDFILE
  local name=$1 f=$2 pid i
  if pid=$(daemon_pid "$f"); then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 200; ++i)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$prog: $name (pid $pid) ignored SIGTERM for 20 s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null
      sleep 0.2
    fi
    echo "$prog: stopped $name (pid $pid)"
  fi
  rm -f "$f"
}

show_logs() {
  local f
  for f in "$dir/munge/munged.log" "$dir/log/slurmctld.log" "$dir/log/slurmd.log"; do
    [ -f "$f" ] || continue
    echo "---- last lines of $f" >&2
    tail -n 25 "$f" >&2
  done
}

# A start that failed: show the logs, stop whatever of this cluster runs, and exit 1.
start_failed() {
  show_logs
  if [ -n "$port" ] && cat "$dir/log/slurmctld.log" "$dir/log/slurmd.log" 2>/dev/null | tail -n 50 | grep -q "Address already in use"; then
    echo "$prog: hint: ports $port-$((port + 1)) are taken; set SLURM_LOCAL_PORT to use others" >&2
  fi
  stop_daemon slurmd "$dir/run/slurmd.pid" >&2
  stop_daemon slurmctld "$dir/run/slurmctld.pid" >&2
  stop_daemon munged "$dir/munge/munged.pid" >&2
  die "$*"
}

install_missing() {
  local p missing=() sudo=""
  for p in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "$prog: installing ${missing[*]}"
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q || die "apt-get update failed"
  # Debian's maintainer scripts would start system-wide daemons (munged on /run/munge,
  # slurmctld without a configuration) through init scripts; we start our own copies. A
  # temporary policy-rc.d denies those starts, unless the machine has a policy of its own.
  local policy=/usr/sbin/policy-rc.d own_policy=0 rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from %s: no service starts during install\nexit 101\n' "$prog" |
      $sudo tee "$policy" >/dev/null && $sudo chmod 0755 "$policy" && own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
  [ $own_policy -eq 0 ] || $sudo rm -f "$policy"
  [ $rc -eq 0 ] || die "apt-get install ${missing[*]} failed"
}

# Whether TCP port P is in use on this machine (a socket listening on it, on any address).
port_taken() { # port_taken P
  [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
}

# The slurmctld port when SLURM_LOCAL_PORT is not set: the first p from 6817 on (by twos, up to
# 100 pairs) with p and p + 1 free. A cluster whose configuration is written starts again on
# its own port, so that a restart keeps the port its jobs were given.
choose_port() {
  [ -n "$port" ] && return 0
  if [ -s "$conf" ]; then
    port=$(sed -n 's/^SlurmctldPort=\([0-9]*\)$/\1/p' "$conf")
    [ -n "$port" ] && ! port_taken "$port" && ! port_taken $((port + 1)) && return 0
  fi
  command -v ss >/dev/null || die "ss (iproute2) is needed to find free ports; or set SLURM_LOCAL_PORT"
  local p
  for ((p = 6817; p < 7017; p += 2)); do
    if ! port_taken "$p" && ! port_taken $((p + 1)); then
      port=$p
      return 0
    fi
  done
  die "no free pair of ports in 6817-7016; set SLURM_LOCAL_PORT"
}

write_conf() {
  local user
  user=$(id -un)
  : >"$dir/plugstack.conf"
  cat >"$conf" <<EOF
# Single-node cluster written by scripts/slurm-local.sh; every path lives under $dir.
ClusterName=nhgdlocal
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job may start again only after its credential expired: keep that short.
AuthInfo=socket=$munge_sock,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$dir/plugstack.conf
# pgid: linuxproc leaves background children of the batch script behind.
ProctrackType=proctrack/pgid
TaskPlugin=task/none
MpiDefault=pmix
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5,sched_interval=5,batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Take CPUs from this file, not from the hardware.
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
# Per-job state and exit code without an accounting database.
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# Keep finished jobs visible to scontrol show job for 10 minutes.
MinJobAge=600
KillWait=15
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
# FORCE:4 lets up to 4 jobs share each CPU (4 MPI ranks on 2 cores).
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

start_munged() {
  munged_pid >/dev/null && return 0
  mkdir -p "$dir/munge"
  chmod 0755 "$dir/munge"
  if [ ! -s "$dir/munge/munge.key" ]; then
    (umask 077 && head -c 1024 /dev/urandom >"$dir/munge/munge.key") || die "cannot write the munge key"
  fi
  chmod 0400 "$dir/munge/munge.key"
  rm -f "$munge_sock" "$munge_sock.lock"
  munged --socket="$munge_sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" </dev/null >>"$dir/munge/munged.start.log" 2>&1 || {
    cat "$dir/munge/munged.start.log" >&2
    start_failed "munged did not start"
  }
  local i
  for ((i = 0; i < 100; ++i)); do
    [ -S "$munge_sock" ] && return 0
    sleep 0.1
  done
  start_failed "munged started but its socket $munge_sock did not appear within 10 s"
}

start() {
  [ "$(id -u)" -eq 0 ] || die "start must run as root (slurmd launches jobs as their owners)"
  # Unix socket paths are limited to 107 bytes.
  [ ${#munge_sock} -lt 100 ] || die "DIR is too long for a Unix socket path: $munge_sock"
  install_missing
  mkdir -p "$dir/state" "$dir/spool" "$dir/run" "$dir/log" || die "cannot create $dir"
  export SLURM_CONF=$conf
  start_munged
  if ! slurmctld_pid >/dev/null; then
    # The configuration may change only while slurmctld is down; slurmd follows it.
    [ -z "$(slurmd_pid)" ] || stop_daemon slurmd "$dir/run/slurmd.pid"
    choose_port
    write_conf
    slurmctld -f "$conf" </dev/null >>"$dir/log/slurmctld.start.log" 2>&1 || {
      cat "$dir/log/slurmctld.start.log" >&2
      start_failed "slurmctld did not start"
    }
  fi
  # A restarted slurmctld may report the node idle from its saved state before slurmd has
  # registered: wait for a registration no older than this slurmd.
  local since=0
  if ! slurmd_pid >/dev/null; then
    since=$(date +%s)
    slurmd -f "$conf" -N localhost </dev/null >>"$dir/log/slurmd.start.log" 2>&1 || {
      cat "$dir/log/slurmd.start.log" >&2
      start_failed "slurmd did not start"
    }
  fi
  local i state="" registered
  for ((i = 0; i < wait_max * 2; ++i)); do
    state=$(sinfo -h -N -n localhost -o %T 2>/dev/null | head -n 1)
    registered=$(scontrol show node localhost 2>/dev/null | tr -s ' ' '\n' | sed -n 's/^SlurmdStartTime=//p')
    registered=$(date -d "$registered" +%s 2>/dev/null || echo 0)
    if [ "$registered" -lt "$since" ]; then
      state="${state:-unknown}, slurmd not registered yet"
    else
      case "$state" in
      idle | mixed | allocated | completing) break ;;
      down* | drain*) scontrol update nodename=localhost state=resume >/dev/null 2>&1 ;;
      esac
    fi
    slurmctld_pid >/dev/null || {
      start_failed "slurmctld exited during start-up"
    }
    slurmd_pid >/dev/null || {
      start_failed "slurmd exited during start-up"
    }
    sleep 0.5
  done
  case "$state" in
  idle | mixed | allocated | completing) ;;
  *)
    start_failed "node localhost not idle after ${wait_max} s (state: '${state:-no answer from slurmctld}')"
    ;;
  esac
  echo "export SLURM_CONF=$conf" >"$dir/env"
  echo "export SLURM_CONF=$conf"
}

stop() {
  export SLURM_CONF=$conf
  local i ids
  # Jobs first, while slurmctld and slurmd can still end their steps (slurmstepd and the
  # job's processes outlive slurmd otherwise).
  if slurmctld_pid >/dev/null; then
    ids=$(squeue -h -o %A 2>/dev/null | sort -u)
    if [ -n "$ids" ]; then
      echo "$prog: cancelling jobs ${ids//$'\n'/ }"
      # shellcheck disable=SC2086
      scancel $ids 2>/dev/null
      for ((i = 0; i < 60; ++i)); do
        [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
    if slurmd_pid >/dev/null; then
      for ((i = 0; i < 40; ++i)); do
        [ -z "$(scontrol listpids 2>/dev/null | awk 'NR > 1')" ] && break
        sleep 0.5
      done
    fi
  fi
  stop_daemon slurmd "$dir/run/slurmd.pid"
  stop_daemon slurmctld "$dir/run/slurmctld.pid"
  stop_daemon munged "$dir/munge/munged.pid"
  rm -f "$dir/env"
  return 0
}

status() {
  export SLURM_CONF=$conf
  local n=0 name pid
  for name in munged slurmctld slurmd; do
    if pid=$(${name}_pid); then
      echo "$name: running (pid $pid)"
      n=$((n + 1))
    else
      echo "$name: not running"
    fi
  done
  if [ $n -eq 3 ]; then
    echo "export SLURM_CONF=$conf"
    sinfo 2>&1
    return 0
  fi
  return 3
}

case "$cmd" in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
