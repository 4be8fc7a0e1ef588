"""grain input pipelines: shuffled, per-process sharded training batches and padded evaluation batches.

Training: source -> this process's shard -> shuffle (reseeded each epoch) -> batch (drop remainder, so
every epoch has the same number of steps) -> repeat. The iterator's position is plain JSON
(`get_state()`), saved with each checkpoint so a resumed run sees exactly the batches it would have seen.
Evaluation: every example exactly once, padded to whole global batches; `mask` marks the real ones.

Every step has one global batch: a fixed, per-epoch reshuffled list of `global_batch` examples. Process
p of P reads only rows [p*L, (p+1)*L) of it (L = global_batch / P), which is exactly the slice
`mesh.shard_batch` expects from it. So 1 process and N processes train on the same batches, a
checkpoint's data position (a step count) means the same thing on any process count that divides the
batch, and no process decodes another's images. (grain's own `ShardByJaxProcess` / `ds[p::P]` gives
each process a fixed part of the *dataset* instead: the global batches then change with P, and
neither property holds.)
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterator

import grain
import jax
import numpy as np

from hw4_jax.core.errors import UserError
from hw4_jax.ssl import demo


def resolve_data(data, workdir: str):
  """A copy of `config.data` with the demo set generated and its paths filled in when source='demo'."""
  data = data.copy_and_resolve_references()
  if str(data.get("source", "")) == "demo":
    root = data.get("demo_dir", "") or os.path.join(workdir, "demo_data")
    with data.unlocked():
      data.update(demo.make_demo_set(root, size=int(data.get("image_size", 96))))
      data.source = ""
  return data


def _read_options(num_threads: int) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=max(2 * num_threads, 2))


def local_batch_size(global_batch: int, what: str = "batch size") -> int:
  """This process's share of a global batch; a UserError unless every device gets an equal part."""
  devices = jax.device_count()
  if global_batch <= 0 or global_batch % devices:
    raise UserError(f"{what} {global_batch} is not divisible by the {devices} devices of this job "
                    f"({jax.process_count()} process(es))")
  return global_batch // jax.process_count()


def steps_per_epoch(source, global_batch: int) -> int:
  """Whole global batches per epoch (the remainder of each epoch is dropped), on any process count."""
  n = len(source) // global_batch
  if n == 0:
    where = getattr(source, "where", type(source).__name__)
    raise UserError(f"{where}: {len(source)} examples are fewer than one batch of {global_batch}")
  return n


class _LocalRows:
  """The k-th example this process reads, over an endless sequence of epochs.

  Local position k -> global step s = k // L, row r = p*L + k % L of that step's batch -> position
  e*n + b*B + r of the shuffled source (e = epoch, b = batch within the epoch), which grain's
  `shuffle` maps to a permutation reseeded every epoch.
  """

  def __init__(self, shuffled, num_examples: int, global_batch: int, local: int, index: int):
    self.shuffled, self.n, self.batch, self.local, self.index = (
        shuffled, num_examples, global_batch, local, index)
    self.steps = num_examples // global_batch

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
  steps_per_epoch(source, global_batch)   # at least one whole batch
  shuffled = grain.MapDataset.source(source).shuffle(seed=seed)
  rows = _LocalRows(shuffled, len(source), global_batch, local, jax.process_index())
  ds = grain.MapDataset.source(rows).batch(local, drop_remainder=True)  # endless: no remainder
  return ds.to_iter_dataset(read_options)


def train_iterator(source, global_batch: int, *, seed: int, num_threads: int = 8,
                   num_workers: int = 0):
  """An infinite iterator of host batches `{'image','label','index'}` (this process's part)."""
  # This process's rows of each global batch: the batches do not depend on the process count.
  ds = train_batches(source, global_batch, seed=seed, read_options=_read_options(num_threads))
  if num_workers > 0:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return iter(ds)


class _Padded:
  """Index-padded view of a source: positions past the end repeat element 0 and are masked out."""

  def __init__(self, source, total: int):
    self.source, self.total = source, total

  def __len__(self) -> int:
    return self.total

  def __getitem__(self, i: int) -> dict:
    rec = dict(self.source[i if i < len(self.source) else 0])
    rec["mask"] = np.bool_(i < len(self.source))
    rec["index"] = np.int32(i)
    return rec


def eval_batches(source, global_batch: int, *, num_threads: int = 8) -> Iterator[dict]:
  """Every example once, in whole global batches (this process's part of each), with a `mask`."""
  procs = jax.process_count()
  total = -(-len(source) // global_batch) * global_batch
  padded = _Padded(source, total)
  # Process p takes the p-th contiguous slice of every global batch, matching shard_batch's layout.
  local = global_batch // procs
  order = np.arange(total).reshape(-1, procs, local)[:, jax.process_index()].reshape(-1)
  ds = grain.MapDataset.range(len(order)).map(lambda k: padded[int(order[k])]).batch(local)
  yield from ds.to_iter_dataset(_read_options(num_threads))
