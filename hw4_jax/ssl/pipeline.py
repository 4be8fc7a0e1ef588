"""grain input pipelines: shuffled, per-process sharded training batches and padded evaluation batches.

Training: source -> this process's shard -> shuffle (reseeded each epoch) -> batch (drop remainder, so
every epoch has the same number of steps) -> repeat. The iterator's position is plain JSON
(`get_state()`), saved with each checkpoint so a resumed run sees exactly the batches it would have seen.
Evaluation: every example exactly once, padded to whole global batches; `mask` marks the real ones.
"""

from __future__ import annotations

import os
from typing import Iterator

import grain
import jax
import numpy as np

from hw4_jax.core import data as core_data
from hw4_jax.core.errors import UserError
from hw4_jax.ssl import demo, images


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


def steps_per_epoch(source, global_batch: int) -> int:
  n = core_data.steps_per_epoch(len(source), global_batch)  # the same on any process count
  if n == 0:
    raise UserError(f"{source.csv_path}: {len(source)} examples are fewer than one batch of "
                    f"{global_batch}")
  return n


def train_iterator(source, global_batch: int, *, seed: int, num_threads: int = 8,
                   num_workers: int = 0):
  """An infinite iterator of host batches `{'image','label','index'}` (this process's part)."""
  # This process's rows of each global batch: the batches do not depend on the process count.
  ds = core_data.train_batches(source, global_batch, seed=seed,
                               read_options=_read_options(num_threads))
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
