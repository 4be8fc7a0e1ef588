"""hw4_jax.ssl.pipeline: the global batches do not depend on the process count (simulated here by
patching jax.process_index / process_count; the real multi-process runs are in tests/test_multihost.py)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from hw4_jax.ssl import pipeline as data
from hw4_jax.core.errors import UserError


class Source:
  """20 records whose value is their index."""

  def __len__(self):
    return 20

  def __getitem__(self, i):
    return {"index": np.int32(i)}


def _batches(monkeypatch, process: int, processes: int, steps: int, global_batch: int = 8,
             state=None) -> list[list[int]]:
  monkeypatch.setattr(jax, "process_index", lambda: process)
  monkeypatch.setattr(jax, "process_count", lambda: processes)
  monkeypatch.setattr(jax, "device_count", lambda: processes)
  it = iter(data.train_batches(Source(), global_batch, seed=5))
  if state is not None:
    it.set_state(state)
  return [next(it)["index"].tolist() for _ in range(steps)]


@pytest.mark.parametrize("processes", [2, 4, 8])
def test_processes_read_their_rows_of_the_one_process_batches(monkeypatch, processes):
  steps = 7  # 2 batches of 8 per epoch (20 // 8): crosses three epoch boundaries
  whole = _batches(monkeypatch, 0, 1, steps)
  parts = [_batches(monkeypatch, p, processes, steps) for p in range(processes)]
  for s in range(steps):
    assert sum((parts[p][s] for p in range(processes)), []) == whole[s]


def test_epochs_are_reshuffled_without_repeats(monkeypatch):
  batches = _batches(monkeypatch, 0, 1, 4)
  first, second = sum(batches[:2], []), sum(batches[2:], [])
  assert len(set(first)) == len(first) == 16 and len(set(second)) == 16
  assert first != second


def test_state_saved_with_two_processes_resumes_with_one(monkeypatch):
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "device_count", lambda: 2)
  it = iter(data.train_batches(Source(), 8, seed=5))
  for _ in range(3):
    next(it)
  state = it.get_state()
  assert _batches(monkeypatch, 0, 1, 2, state=state) == _batches(monkeypatch, 0, 1, 5)[3:]


def test_batch_must_split_evenly_over_devices(monkeypatch):
  monkeypatch.setattr(jax, "device_count", lambda: 3)
  with pytest.raises(UserError, match="batch size 8 is not divisible by the 3 devices"):
    data.train_batches(Source(), 8, seed=0)
  monkeypatch.setattr(jax, "device_count", lambda: 1)
  with pytest.raises(UserError, match="20 examples are fewer than one batch of 32"):
    data.train_batches(Source(), 32, seed=0)
