"""The training loop of BYOL, supervised pre-training and the classifier: grain batches -> jitted step.

Resume is exact: the checkpoint holds the TrainState and the grain iterator's position, per-step
randomness comes from `state.step_rng()`, so a run interrupted and resumed sees the same batches and
draws the same augmentations as one that never stopped. Checkpoints, logging and the stops (time
budget, simulated preemption, SIGTERM / SIGINT) are `core.loop`'s; this loop adds the evaluation
hook and the images/s figure.
"""

from __future__ import annotations

import time
from typing import Callable

import jax
import numpy as np

from hw4_jax.core import mesh as mesh_lib
from hw4_jax.core.loop import Loop


def total_steps(config, steps_per_epoch: int) -> int:
  """`train.num_steps` when > 0, else `train.num_epochs` epochs."""
  return int(config.train.num_steps) or int(config.train.num_epochs) * steps_per_epoch


def run(config, *, workdir: str, name: str, state, step_fn: Callable, mesh, train_iter,
        total: int, ckpt_dir: str, extra: dict | None = None, eval_fn: Callable | None = None,
        eval_every: int = 0, on_first_batch: Callable | None = None):
  """Runs `step_fn` until `total` steps (or a stop); returns (state, summary dict).

  `eval_fn(state, step, final) -> dict of scalars` runs every `eval_every` steps and at the end
  (`final`); its history is returned in `summary['evals']` as (step, scalars) pairs.
  """
  extra = dict(extra or {})
  with Loop(config, workdir, name, total, ckpt_dir) as loop:
    state, restored = loop.restore(state, {**extra, "data_iter": train_iter.get_state()})
    if "data_iter" in restored:
      train_iter.set_state(restored["data_iter"])
    start = step = loop.start
    jitted = mesh_lib.jit_step(step_fn, mesh)
    evals, metrics, first = [], {}, True
    t_steady, images_steady = None, 0
    save_extra = lambda: {**extra, "data_iter": train_iter.get_state()}

    def evaluate(at, final=False):
      scalars = eval_fn(state, at, final)
      loop.logger.scalars(at, scalars)
      print(f"[{name}] eval at step {at}: " + " ".join(f"{k}={v:.4g}" for k, v in scalars.items()),
            flush=True)
      evals.append((at, scalars))

    while step < total:
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
      if eval_fn is not None and eval_every and step % eval_every == 0 and step < total:
        jax.block_until_ready(metrics)
        t_eval = time.perf_counter()
        evaluate(step)
        if t_steady is not None:  # the images/s figure counts training steps only
          t_steady += time.perf_counter() - t_eval
      if loop.end_step(step, state, metrics, save_extra):
        break
    loop.finish(step, state, save_extra)
    if eval_fn is not None and (not evals or evals[-1][0] != step):
      evaluate(step, final=True)
    summary = {"steps": step, "total_steps": total, "stopped_early": loop.stopped_early,
               "evals": evals, "wall_s": loop.elapsed()}
    if metrics:
      summary["final"] = {k: float(np.asarray(v)) for k, v in jax.device_get(metrics).items()}
    if t_steady is not None and images_steady:
      jax.block_until_ready(state.step)
      summary["images_per_s"] = images_steady / (time.perf_counter() - t_steady)
  return state, summary
