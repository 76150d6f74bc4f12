#!/bin/bash
# slurm-down.sh: stop what scripts/slurm-up.sh started in $SLURM_BASE (only the PIDs it recorded;
# a munged that was already running is left alone).
BASE=${SLURM_BASE:-/tmp/slurm-test}
stop() { [ -f "$1" ] || return 0; local pid; pid=$(cat "$1"); kill "$pid" 2>/dev/null
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null; rm -f "$1"; }
stop "$BASE/slurmd.bgpid"; stop "$BASE/slurmctld.bgpid"; stop "$BASE/munged.ourpid"
exit 0
