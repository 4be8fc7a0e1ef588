"""Starts JAX's multi-controller runtime when this process is one of several, else does nothing.

Sources, in order: explicit flags (`--coordinator_address/--num_processes/--process_id`), the
environment (`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`), a multi-task SLURM step
(`srun`), a multi-host TPU slice (`TPU_WORKER_HOSTNAMES`, or `HW4_DISTRIBUTED=1` as set by
launch/tpu_vm.sh: Cloud TPU VMs keep the worker list in their metadata, not in the environment). JAX's
own cluster detection fills in whatever is not given.

Failure: when one process fails, the others are usually blocked in a collective that will never
complete, and a normal exit would wait `shutdown_timeout` (5 min) at JAX's shutdown barrier. So a
failing process calls `abort()`: it posts its error to the coordination service and leaves at once;
a watcher thread in every process (started by `maybe_initialize`) sees the post within a second,
prints it and ends that process with the same status, skipping the barrier. Were a process to die
without posting (killed, segfault), JAX's heartbeat timeout (100 s) stops the rest, and the launchers
(`srun --kill-on-bad-exit`, launch/local_multiprocess.sh) stop them at once.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable

import jax

_ABORT_KEY = "hw4_jax/abort"
_POLL_S = 0.5
_watcher: threading.Thread | None = None
_stop_watching = threading.Event()  # set at exit, and by abort() for its own process
_on_abort: list[Callable[[int], None]] = []


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  return int(value) if value not in (None, "") else None


def cluster_kind() -> str | None:
  """Which multi-process launcher started us, if any."""
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    return "env"
  if (_env_int("SLURM_NTASKS") or 1) > 1 and "SLURM_STEP_ID" in os.environ:
    return "slurm"
  if "," in os.environ.get("TPU_WORKER_HOSTNAMES", "") or os.environ.get("HW4_DISTRIBUTED") == "1":
    return "tpu"
  return None


def maybe_initialize(coordinator_address: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None) -> bool:
  """Calls `jax.distributed.initialize` when running multi-process; returns whether it did."""
  coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
  num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
  process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
  if coordinator_address is None and cluster_kind() is None:
    return False
  if num_processes == 1 and coordinator_address is None:
    return False
  jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                             process_id=process_id)
  if jax.process_count() > 1:
    _start_watcher()
  return True


def _client():
  from jax._src import distributed as jax_distributed  # the documented API has no key-value store
  return getattr(jax_distributed.global_state, "client", None)


def on_abort(callback: Callable[[int], None]) -> None:
  """Calls `callback(exit_status)` (e.g. removing a half-written workdir) before `abort` ends us."""
  _on_abort.append(callback)


def _run_abort_callbacks(code: int) -> None:
  while _on_abort:
    try:
      _on_abort.pop()(code)
    except Exception:  # pylint: disable=broad-except  # best effort on the way out
      pass


def _exit_now(code: int) -> None:
  """Ends the process without JAX's shutdown barrier (the others may never reach it)."""
  _run_abort_callbacks(code)
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


def _posted(client) -> str | None:
  try:
    return client.key_value_try_get(_ABORT_KEY)
  except Exception:  # pylint: disable=broad-except  # not posted (NOT_FOUND), or shutting down
    return None


def _follow(posted: str) -> None:
  """Ends this process because another one failed (the post says which, and with what status)."""
  code, _, message = posted.partition(" ")
  print(f"error: stopping this process (#{jax.process_index()}) because {message}", file=sys.stderr,
        flush=True)
  _exit_now(int(code) if code.isdigit() else 1)


def _watch(client) -> None:
  while not _stop_watching.wait(_POLL_S):
    posted = _posted(client)
    if posted is not None and not _stop_watching.is_set():  # not when aborting or exiting ourselves
      _follow(posted)


def follow_other_failure() -> None:
  """If another process of the job has already failed, end this one the same way (no return).

  For an exception that may only be a consequence (a collective broken by the other's exit)."""
  client = _client() if jax.process_count() > 1 else None
  posted = _posted(client) if client is not None else None
  if posted is not None:
    _stop_watching.set()
    _follow(posted)


def _start_watcher() -> None:
  global _watcher
  client = _client()
  if client is None or _watcher is not None:
    return
  import atexit
  _watcher = threading.Thread(target=_watch, args=(client,), name="hw4_abort_watcher", daemon=True)
  _watcher.start()
  # atexit runs last-in first-out: this stops the watcher before JAX's own shutdown hook runs.
  atexit.register(lambda: (_stop_watching.set(), _watcher.join(timeout=5)))


def abort(message: str, code: int = 2) -> None:
  """Ends this process with `code` and, in a multi-process job, every other process too (promptly)."""
  client = _client() if jax.process_count() > 1 else None
  _stop_watching.set()
  if client is not None:
    posted = _posted(client)
    if posted is not None:  # another process failed first: it speaks for the job
      _follow(posted)
    try:
      client.key_value_set(_ABORT_KEY, f"{code} process {jax.process_index()} failed: {message}")
      if jax.process_index() == 0:  # the coordination service lives here: give the others a moment
        time.sleep(4 * _POLL_S)
    except Exception:  # pylint: disable=broad-except  # another process posted first, or no service
      pass
  _exit_now(code)


def barrier(name: str) -> None:
  """Every process waits here until all have arrived (e.g. process 0 wrote a file the others read).

  A no-op in a single process."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)
