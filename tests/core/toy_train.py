"""A small model trained with the whole core stack: state, mesh, checkpoints, logging.

Run as a script in a subprocess (device count is fixed per process):
  python -m tests.core.toy_train WORKDIR NUM_STEPS [STOP_AFTER]
prints the final params' checksum line and writes params.npy.
"""

from __future__ import annotations

import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hw4_jax.core import checkpoint, mesh, progress
from hw4_jax.core.state import TrainState

GLOBAL_BATCH = 32


class Toy(nn.Module):

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.Dense(16, use_bias=False)(x)  # a bias before BatchNorm has a zero gradient that Adam would amplify
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
    x = nn.Dropout(0.2, deterministic=not train)(nn.relu(x))
    return nn.Dense(1)(x)


def host_batch(position: int) -> dict:
  """The global batch number `position`, this process's rows only (the data position is an int)."""
  rng = np.random.default_rng(position)
  x = rng.standard_normal((GLOBAL_BATCH, 8)).astype(np.float32)
  y = np.sin(x.sum(-1, keepdims=True)).astype(np.float32)
  per = GLOBAL_BATCH // jax.process_count()
  rows = slice(jax.process_index() * per, (jax.process_index() + 1) * per)
  return {"x": x[rows], "y": y[rows]}


def train_step(state: TrainState, batch: dict):
  def loss_fn(params):
    pred, updates = Toy().apply({"params": params, **state.model_state}, batch["x"], train=True,
                                mutable=["batch_stats"], rngs={"dropout": state.step_rng()})
    return jnp.mean((pred - batch["y"]) ** 2), updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  return state.apply_gradients(grads, model_state=updates), {"loss": loss}


def train(workdir: str, num_steps: int, stop_after: int | None = None) -> TrainState:
  m = mesh.make_mesh()
  model = Toy()
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8)), train=False)
  state = TrainState.create(params=variables["params"],
                            model_state={"batch_stats": variables["batch_stats"]},
                            tx=optax.adam(1e-2), rng=jax.random.PRNGKey(1))
  state = mesh.replicate(state, m)
  ckpt = checkpoint.Checkpointer(f"{workdir}/ckpt", every=5)
  state, extra = ckpt.restore_or(state, {"data_position": 0})
  position = extra["data_position"]
  log = progress.Logger(workdir, "toy", num_steps, log_every=5, start_step=position)
  step_fn = mesh.jit_step(train_step, m)
  while position < min(num_steps, stop_after or num_steps):
    state, metrics = step_fn(state, mesh.shard_batch(host_batch(position), m))
    position += 1
    log.step(position, metrics)
    ckpt.maybe_save(position, state, {"data_position": position}, force=position == num_steps)
  ckpt.close()
  log.close()
  return state


if __name__ == "__main__":
  final = train(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None)
  leaves = mesh.to_host(jax.tree.leaves({"p": final.params, "s": final.model_state}))
  if jax.process_index() == 0:
    np.save(f"{sys.argv[1]}/params.npy", np.concatenate([np.ravel(x) for x in leaves]))
  print(f"devices={jax.device_count()} step={int(mesh.to_host(final.step))}")
