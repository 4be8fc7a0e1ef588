"""Orbax checkpoints: every N steps and at the end, keep K, resume the latest automatically.

A checkpoint holds the whole TrainState (params, model state, optimizer state, rng, step) plus a small
JSON "extra" (data-iterator position, stage, vocabulary, ...), so a resumed run is the uninterrupted one.
Saving is collective: every process calls `maybe_save`; orbax writes each shard once.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging


def latest_step(directory: str) -> int | None:
  """The latest finished checkpoint step in `directory` (None if none), without creating it."""
  if not os.path.isdir(directory):
    return None
  steps = ocp.utils.checkpoint_steps(os.path.abspath(directory))
  return max(steps) if steps else None


class Checkpointer:

  def __init__(self, directory: str, every: int, keep: int = 2):
    # orbax logs every save/restore step at INFO through absl: it would drown the progress lines
    absl_logging.set_verbosity(absl_logging.WARNING)
    self.directory = os.path.abspath(directory)
    self.every = max(int(every), 1)
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=("state", "extra"))
    self._closed = False

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def restore_or(self, state: Any, extra: dict | None = None) -> tuple[Any, dict]:
    """The latest checkpoint laid out like `state` (shapes, dtypes, shardings), or the inputs."""
    step = self._manager.latest_step()
    if step is None:
      return state, dict(extra or {})
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), extra=ocp.args.JsonRestore()))
    return restored.state, dict(restored.extra or {})

  def maybe_save(self, step: int, state: Any, extra: dict | None = None, force: bool = False) -> bool:
    """Saves at multiples of `every` (or when forced); a step already on disk is not written twice."""
    step = int(step)
    if not force and step % self.every:
      return False
    if step in self._manager.all_steps():
      return False
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), extra=ocp.args.JsonSave(dict(extra or {}))), force=True)
    return True

  def close(self) -> None:
    """Waits for an asynchronous save to be written, then releases orbax's threads (idempotent)."""
    if not self._closed:
      self._closed = True
      self._manager.wait_until_finished()
      self._manager.close()
