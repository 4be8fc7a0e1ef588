"""Starts JAX's multi-controller runtime when this process is one of several, else does nothing.

Sources, in order: explicit flags (`--coordinator_address/--num_processes/--process_id`), the
environment (`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`), a multi-task SLURM step
(`srun`), a multi-host TPU slice. JAX's own cluster detection fills in whatever is not given.
"""

from __future__ import annotations

import os

import jax


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  return int(value) if value not in (None, "") else None


def cluster_kind() -> str | None:
  """Which multi-process launcher started us, if any."""
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    return "env"
  if (_env_int("SLURM_NTASKS") or 1) > 1 and "SLURM_STEP_ID" in os.environ:
    return "slurm"
  if "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
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
  return True
