"""Per-process input sharding where the global batch does not depend on the number of processes.

Every step has one global batch: a fixed, per-epoch reshuffled list of `global_batch` examples. Process
p of P reads only rows [p*L, (p+1)*L) of it (L = global_batch / P), which is exactly the slice
`mesh.shard_batch` expects from it. So 1 process and N processes train on the same batches, a
checkpoint's data position (a step count) means the same thing on any process count that divides the
batch, and no process decodes another's images.

(grain's own `ShardByJaxProcess` / `ds[p::P]` gives each process a fixed part of the *dataset*
instead: the global batches then change with P, and neither of the two properties above holds.)
"""

from __future__ import annotations

import sys
from typing import Any

import grain
import jax

from hw4_jax.core.errors import UserError


def local_batch_size(global_batch: int, what: str = "batch size") -> int:
  """This process's share of a global batch; a UserError unless every device gets an equal part."""
  devices = jax.device_count()
  if global_batch <= 0 or global_batch % devices:
    raise UserError(f"{what} {global_batch} is not divisible by the {devices} devices of this job "
                    f"({jax.process_count()} process(es))")
  return global_batch // jax.process_count()


def steps_per_epoch(num_examples: int, global_batch: int) -> int:
  """Whole global batches per epoch (the remainder of each epoch is dropped)."""
  return num_examples // global_batch


class _LocalRows:
  """The k-th example this process reads, over an endless sequence of epochs.

  Local position k -> global step s = k // L, row r = p*L + k % L of that step's batch -> position
  e*n + b*B + r of the shuffled source (e = epoch, b = batch within the epoch), which grain's
  `shuffle` maps to a permutation reseeded every epoch.
  """

  def __init__(self, shuffled, num_examples: int, global_batch: int, local: int, index: int):
    self.shuffled, self.n, self.batch, self.local, self.index = (
        shuffled, num_examples, global_batch, local, index)
    self.steps = steps_per_epoch(num_examples, global_batch)

  def __len__(self) -> int:
    return sys.maxsize

  def __getitem__(self, k: int) -> Any:
    step, j = divmod(int(k), self.local)
    epoch, b = divmod(step, self.steps)
    return self.shuffled[epoch * self.n + b * self.batch + self.index * self.local + j]


def train_batches(source, global_batch: int, *, seed: int,
                  read_options: grain.ReadOptions | None = None) -> grain.IterDataset:
  """Endless shuffled batches of this process's rows of every global batch (drop remainder).

  `iter(...)` of the result has `get_state()` / `set_state()` (JSON: the number of steps taken), valid
  on any process count.
  """
  local = local_batch_size(global_batch)
  if steps_per_epoch(len(source), global_batch) == 0:
    where = getattr(source, "csv_path", type(source).__name__)
    raise UserError(f"{where}: {len(source)} examples are fewer than one batch of {global_batch}")
  shuffled = grain.MapDataset.source(source).shuffle(seed=seed)
  rows = _LocalRows(shuffled, len(source), global_batch, local, jax.process_index())
  ds = grain.MapDataset.source(rows).batch(local, drop_remainder=True)  # endless: no remainder
  return ds.to_iter_dataset(read_options)
