"""The data-parallel mesh: batch sharded on axis 'data', everything else replicated.

The same code runs on one CPU, several GPUs and several hosts (after `jax.distributed.initialize`):
each process hands in its own slice of the global batch and jit places the math.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process."""
  return Mesh(np.asarray(jax.devices()), (AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def shard_batch(host_batch: Any, mesh: Mesh) -> Any:
  """Host-local numpy leaves (this process's rows) -> global arrays sharded on the batch axis."""
  sharding = data_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      host_batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a tree (identical on every process) replicated over the mesh."""
  sharding = replicated(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)

  def put(x):
    if isinstance(x, jax.Array) and x.sharding == sharding:
      return x
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(sharding, x, x.shape)

  return jax.tree.map(put, tree)


def constrain(x: Any, mesh: Mesh) -> Any:
  """Inside jit: lay a batch computed on device (e.g. sampled rays) out over the data axis."""
  return jax.lax.with_sharding_constraint(x, data_sharding(mesh))


def jit_step(step_fn: Callable, mesh: Mesh, donate: bool = True) -> Callable:
  """`step(state, batch) -> (state, metrics)` with a replicated state and a batch-sharded batch."""
  rep, dat = replicated(mesh), data_sharding(mesh)
  return jax.jit(step_fn, in_shardings=(rep, dat), out_shardings=(rep, rep),
                 donate_argnums=(0,) if donate else ())


def to_host(tree: Any) -> Any:
  """Global arrays -> numpy on every process (replicated read locally, sharded all-gathered)."""

  def get(x):
    if not isinstance(x, jax.Array):
      return np.asarray(x)
    if x.is_fully_addressable:
      return np.asarray(x)
    if x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))

  return jax.tree.map(get, tree)
