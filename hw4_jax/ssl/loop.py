"""The training loop shared by BYOL, supervised pre-training and the classifier.

Resume is exact: the checkpoint holds the TrainState and the grain iterator's position, per-step
randomness comes from `state.step_rng()`, so a run interrupted and resumed sees the same batches and
draws the same augmentations as one that never stopped. A wall-clock budget (`time_budget_s`, used by
the benchmark) ends the loop early after a checkpoint.
"""

from __future__ import annotations

import time
from typing import Callable

import jax
import numpy as np

from hw4_jax.core import mesh as mesh_lib
from hw4_jax.core.checkpoint import Checkpointer
from hw4_jax.core.logging import Logger


def run(*, workdir: str, name: str, state, step_fn: Callable, mesh, train_iter, total_steps: int,
        ckpt: Checkpointer, extra: dict | None = None, log_every: int = 50,
        eval_fn: Callable | None = None, eval_every: int = 0, time_budget_s: float = 0.0,
        on_first_batch: Callable | None = None):
  """Runs `step_fn` until `total_steps` (or the time budget); returns (state, summary dict).

  `eval_fn(state) -> dict of scalars` runs every `eval_every` steps and at the end; its history is
  returned in `summary['evals']` as (step, scalars) pairs.
  """
  extra = dict(extra or {})
  state, restored = ckpt.restore_or(state, {**extra, "data_iter": train_iter.get_state()})
  if "data_iter" in restored:
    train_iter.set_state(restored["data_iter"])
  start = int(jax.device_get(state.step))
  logger = Logger(workdir, name, total_steps, log_every=log_every)
  logger.start(start)
  jitted = mesh_lib.jit_step(step_fn, mesh)
  evals, metrics, t0, first = [], {}, time.perf_counter(), True
  step, t_steady, images_steady = start, None, 0

  def evaluate(at):
    scalars = eval_fn(state)
    logger.scalars(at, scalars)
    print(f"[{name}] eval at step {at}: " + " ".join(f"{k}={v:.4g}" for k, v in scalars.items()),
          flush=True)
    evals.append((at, scalars))

  stopped_early = False
  while step < total_steps:
    host = next(train_iter)
    if first and on_first_batch is not None:
      on_first_batch(state, host)
    first = False
    batch = mesh_lib.shard_batch({"image": host["image"], "label": host["label"]}, mesh)
    state, metrics = jitted(state, batch)
    step += 1
    if step == start + 2:  # after compilation: time the steady state from here
      jax.block_until_ready(metrics)
      t_steady, images_steady = time.perf_counter(), 0
    elif t_steady is not None:
      images_steady += len(host["image"]) * jax.process_count()
    logger.step(step, metrics)
    if eval_fn is not None and eval_every and step % eval_every == 0 and step < total_steps:
      jax.block_until_ready(metrics)
      t_eval = time.perf_counter()
      evaluate(step)
      if t_steady is not None:  # the images/s figure counts training steps only
        t_steady += time.perf_counter() - t_eval
    budget_hit = time_budget_s and time.perf_counter() - t0 > time_budget_s
    ckpt.maybe_save(step, state, {**extra, "data_iter": train_iter.get_state()},
                    force=bool(budget_hit) or step == total_steps)
    if budget_hit and step < total_steps:
      print(f"[{name}] time budget of {time_budget_s:.0f}s reached at step {step}/{total_steps}",
            flush=True)
      stopped_early = True
      break
  if eval_fn is not None and (not evals or evals[-1][0] != step):
    evaluate(step)
  logger.close()
  ckpt.close()
  summary = {"steps": step, "total_steps": total_steps, "stopped_early": stopped_early,
             "evals": evals, "wall_s": time.perf_counter() - t0}
  if metrics:
    summary["final"] = {k: float(np.asarray(v)) for k, v in jax.device_get(metrics).items()}
  if t_steady is not None and images_steady:
    jax.block_until_ready(state.step)
    summary["images_per_s"] = images_steady / (time.perf_counter() - t_steady)
  return state, summary
