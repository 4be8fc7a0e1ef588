#!/usr/bin/env bash
# Runs NUM_PROCESSES cooperating JAX processes on this machine over loopback: a real multi-host job
# (jax.distributed, gloo on CPU) for testing, and the way to use several GPUs of one node.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/local_multiprocess.sh [-h] NUM_PROCESSES [hw4_jax.main arguments...]

Starts NUM_PROCESSES copies of `python -m hw4_jax.main ARGS` (the `python` on PATH) that form one
jax.distributed job through a coordinator on 127.0.0.1. Each output line is prefixed with [pI].
The script waits for all of them. If one fails, the others get FAIL_WAIT_S seconds to stop on their
own (an hw4_jax job ends all its processes within a second or two when one fails, letting process 0
clean up), then are stopped; the script exits with the failed process's status. Ctrl-C / SIGTERM
stop every process it started at once.

Environment:
  DEVICES_PER_PROCESS  simulated CPU devices per process (default 1; CPU runs only)
  GPUS_PER_PROCESS     GPUs per process (default 0 = CPU run); process I sees GPUs I*G .. I*G+G-1
  PORT                 coordinator port (default: a free port)
  LAUNCH_MODULE        module to run instead of hw4_jax.main (default hw4_jax.main)
  PYTHON               interpreter (default: python)
  FAIL_WAIT_S          seconds the others may take to stop on their own after a failure (default 3)
  KILL_GRACE_S         seconds between SIGTERM and SIGKILL when stopping processes (default 5)

Examples:
  DEVICES_PER_PROCESS=2 launch/local_multiprocess.sh 2 --config=configs/dvgo.py:demo --workdir=runs/mp
  GPUS_PER_PROCESS=1 launch/local_multiprocess.sh 4 --config=configs/byol.py --workdir=runs/byol \
      --config.train.batch_size=256
EOF
}

die() {
  echo "local_multiprocess.sh: $*" >&2
  echo "run 'launch/local_multiprocess.sh -h' for usage" >&2
  exit 2
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

need_int() {  # need_int NAME VALUE MIN [MAX]: an integer in range, or a usage error
  if ! is_uint "$2" || (($2 < $3)) || { [[ $# -gt 3 ]] && (($2 > $4)); }; then
    die "$1 must be an integer >= $3${4:+ and <= $4}, got '$2'"
  fi
}

if [[ $# -eq 0 ]]; then
  usage >&2
  exit 2
fi
if [[ "$1" == "-h" || "$1" == "--help" ]]; then
  usage
  exit 0
fi

NUM_PROCESSES="$1"
shift
need_int NUM_PROCESSES "$NUM_PROCESSES" 1
DEVICES_PER_PROCESS="${DEVICES_PER_PROCESS:-1}"
GPUS_PER_PROCESS="${GPUS_PER_PROCESS:-0}"
KILL_GRACE_S="${KILL_GRACE_S:-5}"
FAIL_WAIT_S="${FAIL_WAIT_S:-3}"
LAUNCH_MODULE="${LAUNCH_MODULE:-hw4_jax.main}"
PYTHON="${PYTHON:-python}"
need_int DEVICES_PER_PROCESS "$DEVICES_PER_PROCESS" 1
need_int GPUS_PER_PROCESS "$GPUS_PER_PROCESS" 0
need_int KILL_GRACE_S "$KILL_GRACE_S" 0
need_int FAIL_WAIT_S "$FAIL_WAIT_S" 0
for arg in "$@"; do
  case "$arg" in
    --coordinator_address* | --num_processes* | --process_id*)
      die "$arg: this script sets the coordinator, process count and process ids itself" ;;
  esac
done
command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH (activate the project's virtualenv)"

if [[ -n "${PORT:-}" ]]; then
  need_int PORT "$PORT" 1 65535
else
  PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi

# `python -m hw4_jax.main` works from any directory, installed or not.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export JAX_COORDINATOR_ADDRESS="127.0.0.1:$PORT" JAX_NUM_PROCESSES="$NUM_PROCESSES"
if ((GPUS_PER_PROCESS == 0)); then
  export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
  export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_force_host_platform_device_count=$DEVICES_PER_PROCESS"
fi

# Every process runs in its own process group (job control), so stopping one also stops anything it
# started (e.g. grain workers), and a Ctrl-C on the terminal reaches only this script, which stops all.
set -m
PIDS=()

prefix() {  # prefix every line (also a last one without newline) with the process tag
  local tag="$1" line
  while IFS= read -r line || [[ -n "$line" ]]; do
    printf '%s %s\n' "$tag" "$line"
  done
}

alive() { kill -0 "$1" 2>/dev/null; }

any_alive() {
  local pid
  for pid in "${PIDS[@]}"; do
    if alive "$pid"; then return 0; fi
  done
  return 1
}

wait_alive() {  # wait_alive SECONDS: until no process is left or the time is up
  local ticks=0
  while ((ticks < $1 * 10)) && any_alive; do
    sleep 0.1
    ticks=$((ticks + 1))
  done
}

stop_all() {  # stop_all [PATIENCE_S]: let them end, SIGTERM the process groups, SIGKILL what is left
  local pid
  ((${#PIDS[@]})) || return 0
  wait_alive "${1:-0}"
  for pid in "${PIDS[@]}"; do
    if alive "$pid"; then kill -TERM -- "-$pid" 2>/dev/null || true; fi
  done
  wait_alive "$KILL_GRACE_S"
  for pid in "${PIDS[@]}"; do
    if alive "$pid"; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
  done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# shellcheck disable=SC2317  # called through trap
on_signal() {
  trap '' INT TERM HUP
  echo "local_multiprocess.sh: $1 received, stopping ${#PIDS[@]} process(es)" >&2
  stop_all
  exit "$2"
}
trap 'on_signal SIGINT 130' INT
trap 'on_signal SIGTERM 143' TERM
trap 'on_signal SIGHUP 129' HUP
trap 'stop_all' EXIT

for ((i = 0; i < NUM_PROCESSES; i++)); do
  if ((GPUS_PER_PROCESS > 0)); then
    gpus="$(seq -s, $((i * GPUS_PER_PROCESS)) $((i * GPUS_PER_PROCESS + GPUS_PER_PROCESS - 1)))"
    CUDA_VISIBLE_DEVICES="$gpus" JAX_PROCESS_ID="$i" \
      "$PYTHON" -m "$LAUNCH_MODULE" "$@" > >(prefix "[p$i]") 2> >(prefix "[p$i]" >&2) &
  else
    JAX_PROCESS_ID="$i" \
      "$PYTHON" -m "$LAUNCH_MODULE" "$@" > >(prefix "[p$i]") 2> >(prefix "[p$i]" >&2) &
  fi
  PIDS+=("$!")
done
set +m  # process groups are set; no job-control notices ("Terminated") from here on
echo "local_multiprocess.sh: started $NUM_PROCESSES process(es) (pids ${PIDS[*]}), coordinator" \
  "127.0.0.1:$PORT" >&2

# Poll instead of `wait -n`: it reports every process's own status and never misses one that ends
# while another is being reaped.
status=0
remaining=("${PIDS[@]}")
while ((${#remaining[@]})); do
  next=()
  for idx in "${!PIDS[@]}"; do
    pid="${PIDS[$idx]}"
    [[ " ${remaining[*]} " == *" $pid "* ]] || continue
    if alive "$pid"; then
      next+=("$pid")
      continue
    fi
    rc=0
    wait "$pid" || rc=$?
    if ((rc != 0 && status == 0)); then
      status=$rc
      echo "local_multiprocess.sh: process $idx exited with status $rc; stopping the others" >&2
      stop_all "$FAIL_WAIT_S"
      next=()
      break
    fi
  done
  remaining=("${next[@]+"${next[@]}"}")
  if ((${#remaining[@]})); then sleep 0.2; fi
done
trap - EXIT
wait 2>/dev/null || true  # the output prefixers end at their process's EOF
exit "$status"
