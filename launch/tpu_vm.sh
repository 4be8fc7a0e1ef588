#!/usr/bin/env bash
# Cloud TPU VMs for hw4_jax: create a VM (or a multi-host slice), install this repository on every
# worker, run one hw4_jax job on all workers at once, copy the results back, delete the VM.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/tpu_vm.sh [-h] COMMAND NAME ZONE [ARGS...]

Commands:
  create NAME ZONE TYPE              create a TPU VM / slice of accelerator TYPE (v4-8, v5litepod-16, ...)
  setup  NAME ZONE                   copy this repository to ~/hw4-jax on every worker and pip-install it
  run    NAME ZONE ARGS...           python -m hw4_jax.main ARGS on every worker (--worker=all), one job
  ssh    NAME ZONE COMMAND...        a shell command on every worker
  copy   NAME ZONE REMOTE_DIR LOCAL_DIR   copy a directory from worker 0 (process 0 writes the outputs)
  delete NAME ZONE                   delete the TPU VM

`run` sets HW4_DISTRIBUTED=1, so every worker joins one jax.distributed job (JAX reads the worker list
and this worker's index from the TPU metadata). On a multi-host slice, --workdir must name the same
shared directory on every worker (NFS / Filestore, or a gcsfuse mount): checkpoints are written by
all workers together. A relative --workdir is under ~/hw4-jax.

Environment:
  PROJECT          gcloud project (default: gcloud's configured project)
  RUNTIME_VERSION  TPU software version for create (default: tpu-ubuntu2204-base)
  SPOT             1: create a Spot TPU
  GCLOUD           gcloud binary (default: gcloud)

Example:
  launch/tpu_vm.sh create hw4 us-central2-b v4-16
  launch/tpu_vm.sh setup  hw4 us-central2-b
  launch/tpu_vm.sh run    hw4 us-central2-b --config=configs/byol.py --workdir=/mnt/shared/byol \
      --config.train.batch_size=1024
  launch/tpu_vm.sh copy   hw4 us-central2-b /mnt/shared/byol ./runs/byol
  launch/tpu_vm.sh delete hw4 us-central2-b
EOF
}

die() {
  echo "tpu_vm.sh: $*" >&2
  echo "run 'launch/tpu_vm.sh -h' for usage" >&2
  exit 2
}

if [[ $# -eq 0 ]]; then
  usage >&2
  exit 2
fi
if [[ "$1" == "-h" || "$1" == "--help" ]]; then
  usage
  exit 0
fi
COMMAND="$1"
shift
case "$COMMAND" in
  create | setup | run | ssh | copy | delete) ;;
  *) die "unknown command '$COMMAND' (create, setup, run, ssh, copy, delete)" ;;
esac
[[ $# -ge 2 ]] || die "$COMMAND needs NAME and ZONE"
NAME="$1"
ZONE="$2"
shift 2
[[ "$NAME" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] ||
  die "NAME '$NAME' must be lower-case letters, digits and '-', starting with a letter"
[[ "$ZONE" =~ ^[a-z]+-[a-z]+[0-9]+-[a-z]$ ]] || die "ZONE '$ZONE' does not look like a zone (e.g. us-central2-b)"

GCLOUD="${GCLOUD:-gcloud}"
command -v "$GCLOUD" >/dev/null || die "'$GCLOUD' not found (install the Google Cloud CLI)"
TPU=("$GCLOUD" compute tpus tpu-vm)
WHERE=("--zone=$ZONE")
if [[ -n "${PROJECT:-}" ]]; then WHERE+=("--project=$PROJECT"); fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Quote arguments for the remote shell (each worker runs them through bash).
quoted() {
  local out="" arg
  for arg in "$@"; do out+="$(printf '%q' "$arg") "; done
  printf '%s' "${out% }"
}

case "$COMMAND" in
  create)
    [[ $# -eq 1 ]] || die "create needs NAME ZONE TYPE"
    TYPE="$1"
    [[ "$TYPE" =~ ^v[0-9]+[a-z]*(pod)?-[0-9]+$ ]] || die "TYPE '$TYPE' does not look like v4-8, v5litepod-16, ..."
    extra=()
    if [[ "${SPOT:-0}" == 1 ]]; then extra+=(--spot); fi
    "${TPU[@]}" create "$NAME" "${WHERE[@]}" --accelerator-type="$TYPE" \
      --version="${RUNTIME_VERSION:-tpu-ubuntu2204-base}" "${extra[@]+"${extra[@]}"}"
    ;;
  setup)
    [[ $# -eq 0 ]] || die "setup takes no arguments after NAME ZONE"
    archive="$(mktemp "${TMPDIR:-/tmp}/hw4-jax.XXXXXX.tgz")"
    trap 'rm -f "$archive"' EXIT
    # The working tree as git sees it (tracked + new, not ignored): no runs, no virtualenvs.
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
      tar --null -T - -czf "$archive")
    "${TPU[@]}" scp "$archive" "$NAME:hw4-jax.tgz" "${WHERE[@]}" --worker=all
    "${TPU[@]}" ssh "$NAME" "${WHERE[@]}" --worker=all --command="set -e
      rm -rf ~/hw4-jax && mkdir -p ~/hw4-jax && tar -xzf ~/hw4-jax.tgz -C ~/hw4-jax
      python3 -m pip install --quiet --upgrade pip
      python3 -m pip install --quiet 'jax[tpu]' -e ~/hw4-jax
      python3 -c 'import jax, hw4_jax; print(\"hw4_jax installed, jax\", jax.__version__)'"
    ;;
  run)
    [[ $# -gt 0 ]] || die "run needs hw4_jax.main arguments (--config=... --workdir=...)"
    for arg in "$@"; do
      case "$arg" in
        --coordinator_address* | --num_processes* | --process_id*)
          die "$arg: on a TPU VM JAX finds the coordinator and process ids itself" ;;
      esac
    done
    "${TPU[@]}" ssh "$NAME" "${WHERE[@]}" --worker=all \
      --command="cd ~/hw4-jax && HW4_DISTRIBUTED=1 PYTHONUNBUFFERED=1 python3 -m hw4_jax.main $(quoted "$@")"
    ;;
  ssh)
    [[ $# -gt 0 ]] || die "ssh needs a COMMAND"
    "${TPU[@]}" ssh "$NAME" "${WHERE[@]}" --worker=all --command="$*"
    ;;
  copy)
    [[ $# -eq 2 ]] || die "copy needs NAME ZONE REMOTE_DIR LOCAL_DIR"
    mkdir -p "$2"
    "${TPU[@]}" scp --recurse "$NAME:$1" "$2" "${WHERE[@]}" --worker=0
    ;;
  delete)
    [[ $# -eq 0 ]] || die "delete takes no arguments after NAME ZONE"
    "${TPU[@]}" delete "$NAME" "${WHERE[@]}" --quiet
    ;;
esac
