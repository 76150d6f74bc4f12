#!/bin/bash
# install-slurm.sh: Debian/Ubuntu Slurm packages for the tests' single-node cluster (scripts/slurm-up.sh).
# Does nothing when sbatch, slurmctld, slurmd and munged are already there; needs root and apt-get otherwise.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if have sbatch && have squeue && have slurmctld && have slurmd && have munged; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  if [ "${MOT_SKIP_SLURM:-}" = 1 ]; then
    echo "install-slurm.sh: Slurm is not installed; MOT_SKIP_SLURM=1, so the Slurm tests will be skipped" >&2
    exit 0
  fi
  echo "install-slurm.sh: Slurm is not installed and this is not root with apt-get;" \
       "install slurmctld slurmd slurm-client munge, or set MOT_SKIP_SLURM=1 to skip the Slurm tests" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# no metapackage and no recommends: 8 small packages instead of ~40
apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge
