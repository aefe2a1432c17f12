#!/usr/bin/env bash
# A two-node SLURM cluster on this one machine, for the tests (tests/test_slurm_cluster.py) and
# for trying tools/submit_slurm.py / tools/slurm/run_net.sbatch without a real cluster.
#
#   sudo bash scripts/slurm_local.sh     # idempotent; prints `sinfo` when the cluster is up
#
# - A cluster that already answers `sinfo` is used as it is (nothing is installed or written).
# - Otherwise (needs root): installs Debian's `slurm-wlm` and `munge` when their programs are
#   missing, writes /etc/slurm/slurm.conf, adds `127.0.0.1 node1 node2` to /etc/hosts, starts
#   munged, slurmctld (state cleared: a test cluster) and two slurmd, `-N node1` and `-N node2`,
#   on 127.0.0.1 with distinct ports, then waits until both nodes are idle.
# - One partition `debug` (the default), 2 CPUs per node, no GPUs, no cgroups
#   (proctrack/linuxproc, task/none: works in a container), ReturnToService=2, JobRequeue=1.
# - Exits non-zero with a message saying why when the cluster cannot be started.
# Stop it: kill "$(cat /run/slurmctld-local.pid)" "$(cat /run/slurmd-local-node1.pid)" ...
set -uo pipefail

MARK="# written by scripts/slurm_local.sh"
CONF=/etc/slurm/slurm.conf
NODES=(node1 node2)
PORTS=(17001 17002)
LOGDIR=/var/log/slurm-local
SPOOL=/var/spool/slurmd-local
STATE=/var/spool/slurmctld-local
WAIT_S=${SLURM_LOCAL_WAIT_S:-60}

say() { echo "[slurm_local] $*"; }
die() {
    say "cannot start the local SLURM cluster: $*" >&2
    exit 1
}

answers() { command -v sinfo >/dev/null 2>&1 && timeout 10 sinfo -h >/dev/null 2>&1; }

idle_nodes() { timeout 10 sinfo -h -N -o "%N %t" 2>/dev/null | awk '$2 == "idle"' | wc -l; }

wait_idle() {
    local i
    for ((i = 0; i < WAIT_S; i++)); do
        if [ "$(idle_nodes)" -ge "${#NODES[@]}" ]; then
            say "cluster up:"
            sinfo -N -o "%N %P %t %c %m"
            return 0
        fi
        sleep 1
    done
    sinfo -N -o "%N %P %t %c %m %E" >&2 || true
    for n in "${NODES[@]}"; do tail -n 5 "$LOGDIR/slurmd-$n.log" >&2 2>/dev/null; done
    tail -n 10 "$LOGDIR/slurmctld.log" >&2 2>/dev/null
    die "the nodes are not idle after ${WAIT_S}s (logs in $LOGDIR)"
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_slurmd() {
    local n=$1
    alive "/run/slurmd-local-$n.pid" && return 0
    mkdir -p "$SPOOL/$n"
    slurmd -N "$n" || die "slurmd -N $n failed (see $LOGDIR/slurmd-$n.log)"
}

conf_text() {
    local CTLD_HOST
    CTLD_HOST=$(hostname -s)
    echo "$MARK (a two-node test cluster on one machine)"
    cat <<EOF
ClusterName=localtest
SlurmctldHost=$CTLD_HOST(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL/%n
SlurmctldPidFile=/run/slurmctld-local.pid
SlurmdPidFile=/run/slurmd-local-%n.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
# a requeued job may start again after cred_expire seconds (default 120; it also bounds the
# time a job step's launch may take, so not less) ...
AuthInfo=cred_expire=10
# ... and starts at the main scheduling loop's next pass after that (every 60 s by default; the
# job's pending reason BeginTime is only cleared there)
SchedulerParameters=bf_interval=1,sched_interval=2
KillWait=5
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=${NODES[0]} NodeAddr=127.0.0.1 NodeHostname=$CTLD_HOST Port=${PORTS[0]} CPUs=2 RealMemory=1000 State=UNKNOWN
NodeName=${NODES[1]} NodeAddr=127.0.0.1 NodeHostname=$CTLD_HOST Port=${PORTS[1]} CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=${NODES[0]},${NODES[1]} Default=YES MaxTime=INFINITE State=UP
EOF
}

if answers; then
    if grep -qF "$MARK" "$CONF" 2>/dev/null && [ "$(id -u)" = 0 ]; then
        if [ "$(conf_text)" = "$(cat "$CONF")" ]; then
            # ours and up to date: restart a slurmd that died, then wait for the nodes
            for n in "${NODES[@]}"; do start_slurmd "$n"; done
            wait_idle
            exit 0
        fi
        say "the running cluster has an older $CONF: restarting it"
        pids=(/run/slurmctld-local.pid /run/slurmd-local-*.pid)
        for pid in "${pids[@]}"; do alive "$pid" && kill "$(cat "$pid")"; done
        for pid in "${pids[@]}"; do
            for _ in $(seq 40); do alive "$pid" || break; sleep 0.5; done
        done
    else
        say "a SLURM cluster already answers sinfo; using it as it is:"
        sinfo
        exit 0
    fi
fi

[ "$(id -u)" = 0 ] || die "needs root (run it with sudo), and no cluster answers sinfo"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
    ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    command -v apt-get >/dev/null || die "slurm/munge are not installed and there is no apt-get"
    say "installing slurm-wlm and munge (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    { timeout 300 apt-get update -q &&
        timeout 600 apt-get install -y -q --no-install-recommends slurm-wlm munge; } \
        >/tmp/slurm_local_apt.log 2>&1 ||
        die "apt-get install slurm-wlm munge failed (see /tmp/slurm_local_apt.log)"
fi

if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching it"
fi

# host names of the nodes resolve to this machine
for n in "${NODES[@]}"; do
    getent hosts "$n" >/dev/null || echo "127.0.0.1 $n" >>/etc/hosts
done

# munge: a key, its directories, the daemon (as the munge user where there is one)
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
if getent passwd munge >/dev/null; then
    chown munge: /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
    chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    if getent passwd munge >/dev/null; then
        runuser -u munge -- munged || die "munged failed (see /var/log/munge/munged.log)"
    else
        munged --force || die "munged failed (see /var/log/munge/munged.log)"
    fi
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    munge -n | unmunge >/dev/null 2>&1 || die "munge does not answer"
fi

mkdir -p /etc/slurm "$LOGDIR" "$SPOOL" "$STATE"
conf_text >"$CONF"

if ! alive /run/slurmctld-local.pid; then
    slurmctld -c || die "slurmctld failed (see $LOGDIR/slurmctld.log)"
fi
for _ in $(seq 30); do answers && break; sleep 0.5; done
answers || die "slurmctld does not answer (see $LOGDIR/slurmctld.log)"
for n in "${NODES[@]}"; do start_slurmd "$n"; done
wait_idle
