#!/bin/bash
# slurm-up.sh: a real single-node Slurm (slurmctld + slurmd + munge) without systemd, for the tests.
# Run as root. Writes $SLURM_BASE/slurm.conf; every client then needs `export SLURM_CONF=$SLURM_BASE/slurm.conf`.
# Env: SLURM_BASE (default /tmp/slurm-test), SLURM_CTLD_PORT / SLURMD_PORT (default 6817 / 6818; pick
# others to run next to another cluster on this host). Stop it with scripts/slurm-down.sh.
set -euo pipefail
BASE=${SLURM_BASE:-/tmp/slurm-test}
CTLD_PORT=${SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
HOST=$(hostname -s)            # NodeName must equal this (or start slurmd with -N <name>)
NCPU=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 / 2 ))  # must be <= detected RAM
mkdir -p "$BASE"/{state,spool,log,out}; chmod 755 "$BASE"
cat > "$BASE/slurm.conf" <<CONF
ClusterName=ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/slurmctld.pid
SlurmdPidFile=$BASE/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.txt
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$BASE/slurm.conf"
# munge: key, runtime dirs, daemon running as the munge user
[ -s /etc/munge/munge.key ] || /usr/sbin/mungekey --create --force
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
if ! munge -n >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged          # daemonizes; writes /run/munge/munged.pid
  for i in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
  cp /run/munge/munged.pid "$BASE/munged.ourpid"  # remember that we started it
fi
munge -n | unmunge >/dev/null
/usr/sbin/slurmctld -D -f "$SLURM_CONF" > "$BASE/log/slurmctld.out" 2>&1 & echo $! > "$BASE/slurmctld.bgpid"
/usr/sbin/slurmd    -D -f "$SLURM_CONF" > "$BASE/log/slurmd.out"    2>&1 & echo $! > "$BASE/slurmd.bgpid"
for i in $(seq 60); do
  st=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true); [ "$st" = idle ] && break; sleep 0.5
done
sinfo
[ "$st" = idle ] || { echo "node not idle: $st"; tail -20 "$BASE"/log/*.log; exit 1; }
