#!/usr/bin/env bash
# A real SLURM run of the bundled demo through the slurm profile, on a single-node cluster that
# this script builds from the distribution's packages and takes down again.
#
# Usage (as root, from anywhere; Debian/Ubuntu with apt-get):
#   bash workflow/profiles/slurm/local_test.sh 2>&1 | tee benchmarks/results/slurm_local_test.log
#
# Environment variables (all optional):
#   RUN=slurm_local_test   the demo's run name: results/$RUN/ and logs/$RUN/, both removed first, so
#                          the run starts fresh and results/demo/ (make demo) is never touched
#   PYTHON, SNAKEMAKE      default: the checkout's .venv/bin/python and .venv/bin/snakemake
#   SLURMCTLD_PORT=6817, SLURMD_PORT=6818   ports of the two daemons (127.0.0.1)
#   KEEP_WORK=1            keep the temporary folder (config, keys, state, daemon logs) at the end
#   SNAKEMAKE_ARGS="-n"    extra snakemake arguments (e.g. -n: bring the cluster up, plan, take it down)
#
# What it does:
#   1. apt-get installs slurm-wlm (slurmctld, slurmd, slurm-client) and munge when missing, and
#      snakemake-executor-plugin-slurm into the environment when missing (the `cluster` extra).
#   2. In a fresh temporary folder: a munge key and a munged on its own socket; a slurm.conf with one
#      node, this host, as `slurmd -C` reads it (CPUs, sockets, cores, RealMemory), one partition,
#      select/cons_tres (CR_CPU_Memory), proctrack/linuxproc, task/none, no cgroups, no accounting
#      database (jobcomp/filetxt records every finished job instead), state and logs in that folder.
#      No systemd: munged, slurmctld and slurmd run as background processes of this script.
#   3. Waits until `sinfo` shows the node idle, then runs the demo (configs/config.yaml, the config
#      of `make demo`) with `snakemake --profile workflow/profiles/slurm`, plus a second profile
#      generated from it for this node (see below), into results/$RUN/.
#   4. Prints the wall time, the SLURM jobs (from the jobcomp record and from snakemake's log)
#      and the model's metrics; a trap cancels what is left and stops the daemons on any exit.
#
# What differs from the slurm profile, and why (all in the generated second profile or below):
#   - `gpu` (train: gpu: 1) is dropped: the node has no GPU; the demo config says device: cpu.
#   - mem_mb requests above RealMemory / CPUs are lowered to it (the profile asks up to 32000 MB,
#     more than a small node has; two jobs then fit side by side), and set-threads above the
#     node's CPUs are lowered to its CPUs (the profile asks 8 for ingest and train).
#   - No account: the cluster has none (no slurmdbd); the plugin's guess fails and it submits
#     without -A (its --slurm-no-account flag is accepted but, in 2.8.0, read nowhere).
#   - srun wrapper: the config is not at /etc/slurm/slurm.conf but named by SLURM_CONF, and the
#     jobstep plugin (0.6.1) drops every SLURM_* variable but the job's ids before its inner `srun`,
#     which then cannot find the config ("fetch_config: DNS SRV lookup failed"; upstream:
#     snakemake-executor-plugin-slurm issue #164). A `srun` first on PATH (sbatch exports PATH)
#     sets SLURM_CONF again and runs /usr/bin/srun. A cluster with its config in the usual place,
#     or configless, needs none of this. Nothing under /etc is written.
#   - --slurm-status-command squeue: without a database `sacct` cannot answer; MinJobAge=3600 keeps
#     finished jobs visible to squeue/scontrol long enough.
#   - --slurm-init-seconds-before-status-checks 10: the plugin's default (40 s, +10 s per check
#     with no finished job) is made for long jobs; the demo's jobs take seconds to minutes.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$REPO"
RUN=${RUN:-slurm_local_test}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
SNAKEMAKE=${SNAKEMAKE:-$REPO/.venv/bin/snakemake}
SLURMCTLD_PORT=${SLURMCTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
KEEP_WORK=${KEEP_WORK:-0}
SNAKEMAKE_ARGS=${SNAKEMAKE_ARGS:-}

say() { printf '[local_test %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root: slurmd starts jobs as the submitting user and munged/slurmd need root here"
[[ $RUN =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "RUN='$RUN' is no valid run name"
[[ -x $PYTHON && -x $SNAKEMAKE ]] || die "no $PYTHON or $SNAKEMAKE (make install creates .venv)"

# --- 1. packages ------------------------------------------------------------------------------
missing=()
for tool in slurmctld slurmd sinfo sbatch squeue munged mungekey; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    say "installing slurm-wlm and munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d or a missing init system may refuse to start the services: we start them ourselves
    apt-get install -y -qq --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge
fi
if ! "$PYTHON" -c 'import snakemake_executor_plugin_slurm' 2>/dev/null; then
    say "installing snakemake-executor-plugin-slurm into $(dirname "$PYTHON")"
    "$PYTHON" -m pip install --quiet "snakemake-executor-plugin-slurm>=1.0"
fi
say "$(slurmctld -V), $(munged -V 2>&1 | awk '{print $1; exit}'), snakemake $("$SNAKEMAKE" --version)," \
    "executor plugin $("$PYTHON" -c 'import importlib.metadata as m; print(m.version("snakemake-executor-plugin-slurm"))')"

# --- 2. munge and slurm in a temporary folder --------------------------------------------------
WORK=$(mktemp -d /tmp/slurm-local-test.XXXXXX)   # 0700, root's
PIDS=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    if [[ -n ${SLURM_CONF:-} ]] && command -v squeue >/dev/null; then
        local left
        left=$(squeue -h -o %i 2>/dev/null)
        [[ -n $left ]] && { say "cancelling jobs still queued: $left"; scancel $left; sleep 2; }
    fi
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do   # slurmd, slurmctld, then munged
        kill "${PIDS[i]}" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && { say "daemon $pid did not stop, killing it"; kill -9 "$pid"; }
    done
    ((${#PIDS[@]})) && say "daemons stopped"
    if ((status != 0)); then
        for f in "$WORK"/log/slurmctld.log "$WORK"/log/slurmd.log "$WORK"/munge/munged.log; do
            [[ -s $f ]] && { say "last lines of $f:"; tail -n 20 "$f"; }
        done
    fi
    if [[ $KEEP_WORK == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK"/{munge,socket,log,state/ctld,state/d,profile}
# munged wants its socket's folder (and those above it) searchable by all, its key's folder private
chmod 711 "$WORK"
chmod 755 "$WORK"/socket
chmod 700 "$WORK"/munge
mungekey --create --keyfile="$WORK/munge/munge.key" 2>/dev/null \
    || { dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none; }
chmod 600 "$WORK/munge/munge.key"
MUNGE_SOCKET=$WORK/socket/munge.socket
munged --foreground --key-file="$WORK/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" \
    --seed-file="$WORK/munge/munged.seed" >"$WORK/log/munged.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [[ -S $MUNGE_SOCKET ]] && break; sleep 0.2; done
munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET" >/dev/null || die "munged does not answer on $MUNGE_SOCKET"
say "munged up ($MUNGE_SOCKET)"

NODE_LINE=$(slurmd -C | grep '^NodeName=')          # NodeName=<host> CPUs=.. ... RealMemory=..
NODE=$(sed -E 's/^NodeName=([^ ]+).*/\1/' <<<"$NODE_LINE")
CPUS=$(sed -E 's/.* CPUs=([0-9]+).*/\1/' <<<"$NODE_LINE")
MEMORY=$(sed -E 's/.* RealMemory=([0-9]+).*/\1/' <<<"$NODE_LINE")
export SLURM_CONF=$WORK/slurm.conf
cat >"$SLURM_CONF" <<EOF
# generated by workflow/profiles/slurm/local_test.sh
ClusterName=localtest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$WORK/state/ctld
SlurmdSpoolDir=$WORK/state/d
SlurmctldPidFile=$WORK/state/slurmctld.pid
SlurmdPidFile=$WORK/state/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$WORK/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MinJobAge=3600
KillWait=10
$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
say "slurm.conf: one node, $NODE_LINE"

slurmctld -D -i -f "$SLURM_CONF" >"$WORK/log/slurmctld.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping | grep -q UP || die "slurmctld did not come up"
slurmd -D -f "$SLURM_CONF" >"$WORK/log/slurmd.out" 2>&1 &
PIDS+=($!)
state=""
for _ in $(seq 120); do
    state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true)
    [[ $state == idle ]] && break
    sleep 0.5
done
[[ $state == idle ]] || die "node $NODE is '$state', not idle, after 60 s"
say "cluster up:"
sinfo -N -l

# --- 3. the demo through the slurm profile -------------------------------------------------
# A second profile for this node: the slurm profile's resources without gpu, with mem_mb and threads
# capped to what the node has. Later --profile entries replace whole top-level keys, so the three
# keys are written out whole.
"$PYTHON" - "$WORK/profile/config.yaml" "$CPUS" "$MEMORY" <<'EOF'
import sys, yaml
out, cpus, memory = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cap = memory // cpus
profile = yaml.safe_load(open("workflow/profiles/slurm/config.yaml"))
def fit(resources):
    resources = {k: v for k, v in (resources or {}).items() if k not in ("gpu", "gpu_model", "gres")}
    if "mem_mb" in resources:
        resources["mem_mb"] = min(int(resources["mem_mb"]), cap)
    return resources
node = {
    "default-resources": fit(profile.get("default-resources")),
    "set-resources": {rule: fit(r) for rule, r in (profile.get("set-resources") or {}).items()},
    "set-threads": {rule: min(int(t), cpus) for rule, t in (profile.get("set-threads") or {}).items()},
}
yaml.safe_dump(node, open(out, "w"), sort_keys=False)
EOF
say "node profile ($WORK/profile/config.yaml):"
cat "$WORK/profile/config.yaml"

rm -rf "results/$RUN" "logs/$RUN"
mkdir -p "$WORK/bin"
cat >"$WORK/bin/srun" <<EOF
#!/bin/sh
# local_test.sh: the jobstep plugin unsets SLURM_CONF before calling srun (see the script's top)
SLURM_CONF=$SLURM_CONF exec $(command -v srun) "\$@"
EOF
chmod 755 "$WORK/bin/srun"
export PATH=$WORK/bin:$REPO/.venv/bin:$PATH   # the srun wrapper; as `make demo`: jobs find deeprc-hopfield
SMK=("$SNAKEMAKE" --profile workflow/profiles/slurm --profile "$WORK/profile"
     --config "run=$RUN"
     --slurm-status-command squeue --slurm-init-seconds-before-status-checks 10 $SNAKEMAKE_ARGS)
say "running: ${SMK[*]}"
start=$(date +%s)
set +e
"${SMK[@]}" 2>&1 | tee "$WORK/log/snakemake.log"
smk_status=${PIPESTATUS[0]}
set -e
wall=$(($(date +%s) - start))

# --- 4. what happened ----------------------------------------------------------------------
sleep 2   # let slurmctld write the last jobcomp records
say "finished jobs recorded by slurmctld (jobcomp/filetxt):"
touch "$WORK/log/jobcomp.txt"
sed -E 's/^JobId=([0-9]+) .* JobState=([^ ]+) .* StartTime=([^ ]+) EndTime=([^ ]+) .* Tres=([^ ]+) .*/  job \1 \2 \3 -> \4 \5/' \
    "$WORK/log/jobcomp.txt"
n_jobcomp=$(grep -c 'JobId=' "$WORK/log/jobcomp.txt" || true)
n_completed=$(grep -c 'JobState=COMPLETED' "$WORK/log/jobcomp.txt" || true)
n_batch=$({ grep -oE 'SLURM jobid [0-9]+' "$WORK/log/snakemake.log" || true; } | sort -u | wc -l)
if sacct -X -n -o JobID >/dev/null 2>"$WORK/log/sacct.err"; then
    say "sacct: $(sacct -X -n -o JobID | wc -l) jobs"
else
    say "sacct unavailable here ($(head -n 1 "$WORK/log/sacct.err")): counted from jobcomp and snakemake's log"
fi
say "snakemake exit status: $smk_status"
say "wall time of the snakemake run: ${wall} s ($((wall / 60)) min $((wall % 60)) s)"
say "SLURM jobs submitted (snakemake log): $n_batch; finished (jobcomp): $n_jobcomp, COMPLETED: $n_completed"
if [[ -s results/$RUN/evaluation/metrics.tsv ]]; then
    say "results/$RUN/evaluation/metrics.tsv:"
    cat "results/$RUN/evaluation/metrics.tsv"
fi
((smk_status == 0)) || die "snakemake failed (status $smk_status)"
say "done: results/$RUN/report.html"
