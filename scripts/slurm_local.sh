#!/usr/bin/env bash
# A one-node SLURM on this machine, for the tests and for trying the cluster path before a real cluster.
#
#   eval "$(bash scripts/slurm_local.sh start [STATE_DIR])"   # starts munged, slurmctld, slurmd; prints `export SLURM_CONF=...`
#   bash scripts/slurm_local.sh stop [STATE_DIR]              # stops the daemons it started, removes nothing else
#
# Needs Debian's slurm-wlm and munge packages (`apt-get install -y slurm-wlm munge`) and root (slurmd
# runs jobs as their users). Everything it writes (slurm.conf, state, logs, pid files) is under STATE_DIR
# (default /tmp/mpnn-slurm); every SLURM command must see SLURM_CONF=STATE_DIR/slurm.conf. One node named
# after this host, with its cores and 3/4 of its memory, in one partition `debug`; no accounting database
# (sacct is not available), no cgroups. Exits non-zero with the reason when SLURM cannot start.
set -euo pipefail
action=${1:?usage: slurm_local.sh start|stop [STATE_DIR]}
state=${2:-/tmp/mpnn-slurm}
conf="$state/slurm.conf"
say() { echo "slurm_local.sh: $*" >&2; }
# A killed daemon can stay a zombie until its parent (here PID 1) reaps it; kill -0 and pgrep count zombies.
alive() { [[ -n "$1" && -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat") != Z ]]; }
running() { local pid; for pid in $(pgrep -x "$1"); do alive "$pid" && { echo "$pid"; return 0; }; done; return 1; }
pid_of() { [[ -f "$state/$1.pid" ]] && cat "$state/$1.pid"; }

stop() {
    if [[ -f "$conf" ]]; then  # its jobs first, so that no job step outlives the daemons
        SLURM_CONF="$conf" scancel --user="$(id -un)" 2>/dev/null || true
        sleep 1
    fi
    # slurmd, slurmctld, then munged: only a munged this script started (its pid file)
    for daemon in slurmd slurmctld munged; do
        if [[ -f "$state/$daemon.pid" ]]; then
            stop_daemon "$daemon" "$(cat "$state/$daemon.pid")"
            rm -f "$state/$daemon.pid"
        fi
    done
}

stop_daemon() {  # gone before stop returns, so that a start right after it finds none of its daemons running
    local daemon=$1 pid=$2
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 300); do alive "$pid" || return 0; sleep 0.1; done
    say "$daemon (pid $pid) did not stop in 30 s"
    exit 1
}

start() {
    for tool in munged slurmctld slurmd sinfo; do
        command -v "$tool" >/dev/null || { say "$tool not found: apt-get install -y slurm-wlm munge"; exit 1; }
    done
    [[ $(id -u) == 0 ]] || { say "needs root (slurmd starts jobs as their users)"; exit 1; }
    [[ -r /etc/munge/munge.key ]] || { say "/etc/munge/munge.key is missing: reinstall munge"; exit 1; }
    mkdir -p "$state/spool" "$state/ctld" /run/munge
    chown munge:munge /run/munge
    if ! running munged >/dev/null; then
        # munged runs as the munge user, which may not enter STATE_DIR: its pid file goes to /run/munge.
        su -s /bin/sh munge -c "munged --pid-file=/run/munge/munged.pid" || { say "munged did not start"; exit 1; }
        cp /run/munge/munged.pid "$state/munged.pid"
    fi
    local host cpus memory
    host=$(hostname -s)
    cpus=$(nproc)
    memory=$(awk '/MemTotal/ {print int($2 / 1024 * 3 / 4)}' /proc/meminfo)
    cat >"$conf" <<EOF
ClusterName=local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
ReturnToService=2
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
KillWait=30
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$conf"
    local other
    for daemon in slurmctld slurmd; do  # one of another SLURM would hold the ports
        if other=$(running "$daemon") && ! alive "$(pid_of "$daemon")"; then
            say "another $daemon is running (pid $other): stop it first"
            exit 1
        fi
    done
    alive "$(pid_of slurmctld)" || slurmctld
    alive "$(pid_of slurmd)" || slurmd
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -q idle; then
            echo "export SLURM_CONF=$conf"
            return
        fi
        sleep 0.5
    done
    say "the node did not become idle within 30 s; logs: $state/slurmctld.log, $state/slurmd.log"
    stop
    exit 1
}

case "$action" in
    start) start ;;
    stop) stop ;;
    *) say "unknown action '$action': use start or stop"; exit 2 ;;
esac
