#!/usr/bin/env bash
# A one-node SLURM on this host, for `python -m bench run --executor slurm` and tests/test_slurm.py.
#
# Installs Debian's slurm-wlm and munge when missing (apt-get, as root), writes a slurm.conf for
# this host (its short hostname, its cores and memory; one partition "local"), starts munged,
# slurmctld and slurmd, and waits until the node is idle. Idempotent: daemons already running
# are left alone. Everything lives under $SLURM_LOCAL_DIR (default /tmp/slurm-local): config,
# state, spool and logs. `scripts/slurm-local.sh stop` ends the daemons it started (munged too).
#
# Exit status 0: `sinfo` shows the node idle. Anything else: the last lines of the logs say why.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/slurm-local}
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

stop() {
    for name in slurmd slurmctld; do
        [ -f "$DIR/$name.pid" ] && kill "$(cat "$DIR/$name.pid")" 2>/dev/null || true
        rm -f "$DIR/$name.pid"
    done
    if [ -f "$DIR/munged.started" ]; then  # only a munged this script started
        as_root kill "$(cat /run/munge/munged.pid 2>/dev/null || echo 0)" 2>/dev/null || true
        rm -f "$DIR/munged.started"
    fi
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

if [ "${1:-start}" = stop ]; then
    stop
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    echo "installing slurm-wlm and munge" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq slurm-wlm munge >/dev/null
fi

mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
USER_NAME=$(id -un)

# munge: one key, one daemon (its default socket is what slurm's auth/munge talks to). Daemons are
# checked by asking them, not by process name: a daemon just ended lingers as a zombie of that name.
if ! munge -n >/dev/null 2>&1; then
    as_root mkdir -p /etc/munge /var/run/munge /var/log/munge /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then
        as_root sh -c 'dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null'
    fi
    if id munge >/dev/null 2>&1; then
        as_root chown -R munge:munge /etc/munge /var/run/munge /var/log/munge /var/lib/munge
        as_root chmod 0400 /etc/munge/munge.key
        as_root runuser -u munge -- munged
    else
        as_root chmod 0400 /etc/munge/munge.key
        as_root munged --force
    fi
    mkdir -p "$DIR" && touch "$DIR/munged.started"
fi

cat > "$CONF" <<EOF
ClusterName=local
SlurmctldHost=$HOST
SlurmUser=$USER_NAME
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

scontrol ping 2>/dev/null | grep -q UP || as_root env SLURM_CONF="$CONF" slurmctld -c
ps -C slurmd -o stat= | grep -qv Z || as_root env SLURM_CONF="$CONF" slurmd -c

for _ in $(seq 60); do
    if sinfo -h -N -o '%t' 2>/dev/null | grep -qx 'idle'; then
        echo "SLURM up: node $HOST ($CPUS CPUs), partition local; export SLURM_CONF=$CONF" >&2
        exit 0
    fi
    sleep 1
done
echo "SLURM did not come up; the logs say why:" >&2
tail -n 20 "$DIR"/log/*.log >&2 || true
exit 1
