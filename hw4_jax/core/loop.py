"""The bookkeeping every training loop shares: resume, progress, checkpoints, stops, dispatch pacing.

A trainer keeps its own `for` loop (DVGO's stages and the SSL trainers do different work between
steps) and hands each finished step to `Loop.end_step`:

    with Loop(config, workdir, "byol", total, ckpt_dir) as loop:
      state, extra = loop.restore(state, extra)
      for step in range(loop.start + 1, total + 1):
        state, metrics = step_fn(state, batch)
        if loop.end_step(step, state, metrics, extra_fn):
          break                                  # the time budget: the run ends as finished
      loop.finish(step, state, extra_fn())

Stops, the same keys for every task (top level of every config):
- `preempt_at="<loop>:<step>"`: a simulated preemption after that step: checkpoint, exit 75.
- `time_budget_s`: wall-clock seconds of this loop; it then ends as finished (checkpoint, the
  trainer's final evaluation and outputs, exit 0). Re-running a pre-training or classifier workdir
  continues its schedule; a DVGO workdir (and a sweep's or comparison's part) with its outputs
  written counts as done.
- SIGTERM / SIGINT (`core.interrupt`): checkpoint after the current step, `Interrupted` (exit 143
  / 130); the re-run resumes exactly.

Pacing: at most `MAX_IN_FLIGHT` steps are dispatched ahead of the devices. JAX dispatches
asynchronously, and on XLA:CPU with several devices an unbounded run-ahead deadlocks: the client
launches each device's part of a step on a pool of max(cores, devices) threads, and a launch that
finds its device's queue full (32 computations) blocks one of those threads; the step that
would drain the queue then cannot get a thread for every device, and its collectives wait until
XLA aborts the process ("Termination timeout for all gather ... Expected 4 threads to join").
"""

from __future__ import annotations

import collections
import os
import time
from typing import Any, Callable

import jax

from hw4_jax.core import interrupt
from hw4_jax.core.checkpoint import Checkpointer
from hw4_jax.core.progress import Logger

MAX_IN_FLIGHT = 2
PREEMPTED = 75   # EX_TEMPFAIL: the job is worth re-running


def _value(extra: dict | Callable[[], dict] | None) -> dict:
  return dict((extra() if callable(extra) else extra) or {})


class Loop:
  """Resume, progress, checkpoints and stops of one training loop (see the module docstring)."""

  def __init__(self, config, workdir: str, name: str, total_steps: int, ckpt_dir: str, *,
               log_every: int | None = None):
    self.workdir, self.name, self.total = workdir, name, int(total_steps)
    self.log_every = int(log_every or config.get("log_every", 100))
    self.preempt_at = str(config.get("preempt_at", "") or "")
    self.budget_s = float(config.get("time_budget_s", 0.0) or 0.0)
    self.ckpt = Checkpointer(ckpt_dir, every=int(config.get("checkpoint_every", 1000)),
                             keep=int(config.get("keep_checkpoints", 2)))
    self.start = 0
    self.stopped_early = False
    self.logger: Logger | None = None
    self._t0 = time.perf_counter()
    self._in_flight: collections.deque = collections.deque()

  def __enter__(self) -> "Loop":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def restore(self, state, extra: dict | None = None) -> tuple[Any, dict]:
    """The latest checkpoint (or the inputs); starts the progress log at its step."""
    state, extra = self.ckpt.restore_or(state, extra)
    self.start = int(jax.device_get(state.step))
    self.logger = Logger(self.workdir, self.name, self.total, self.log_every, start_step=self.start)
    config_file = os.path.join(self.workdir, "config.json")
    if os.path.isfile(config_file):   # the run's configuration, readable next to its curves
      with open(config_file) as f:
        self.logger.text("config", "```json\n" + f.read() + "\n```", self.start)
    if self.start:
      print(f"[{self.name}] resumed at step {self.start}", flush=True)
    self._t0 = time.perf_counter()
    return state, extra

  def elapsed(self) -> float:
    return time.perf_counter() - self._t0

  def pace(self, outputs: Any) -> None:
    """Remembers a step's outputs; waits for the one `MAX_IN_FLIGHT` steps back."""
    self._in_flight.append(jax.tree.leaves(outputs)[:1])
    if len(self._in_flight) > MAX_IN_FLIGHT:
      jax.block_until_ready(self._in_flight.popleft())

  def save(self, step: int, state, extra, force: bool = False) -> None:
    self.ckpt.maybe_save(step, state, _value(extra), force=force)

  def end_step(self, step: int, state, metrics, extra=None, scalars: dict | None = None) -> bool:
    """After step `step`: pace, log, checkpoint, and the stops. True = stop here (time budget)."""
    self.pace(metrics)
    if self.logger.due(step):
      self.logger.step(step, {**metrics, **(scalars or {})}, force=True)
    self.save(step, state, extra)
    if self.preempt_at == f"{self.name}:{step}":
      self.save(step, state, extra, force=True)
      self.ckpt.close()
      print(f"[{self.name}] preempted after step {step} (config.preempt_at)", flush=True)
      raise SystemExit(PREEMPTED)
    signum = interrupt.agreed()
    if signum is not None:
      self.save(step, state, extra, force=True)
      self.ckpt.close()
      raise interrupt.Interrupted(signum, f"{self.name} checkpoint saved at step {step}")
    if self.budget_s and step < self.total and self.elapsed() > self.budget_s:
      print(f"[{self.name}] time budget of {self.budget_s:.0f}s reached at step {step}/{self.total}",
            flush=True)
      self.stopped_early = True
      return True
    return False

  def finish(self, step: int, state, extra=None) -> None:
    """The last checkpoint of the loop (whether it ran to the end or stopped on its budget)."""
    self.save(step, state, extra, force=True)
    self.ckpt.close()

  def close(self) -> None:
    """Waits for a checkpoint being written and closes the logs (also after an error)."""
    self.ckpt.close()
    if self.logger is not None:
      self.logger.close()
