"""The one train state shared by DVGO, BYOL, supervised pre-training and the classifier.

Everything a run needs to continue exactly lives in this tree: step, params, model state (BatchNorm
statistics or DVGO's non-trainable buffers), optimizer state (BYOL's EMA target lives there too) and
the base rng. Per-step randomness is `fold_in(rng, step)`, so a resumed run draws the same numbers.
Every task steps through `apply_gradients`: extra keyword arguments go to the optimizer's update
(`optax.GradientTransformationExtraArgs`, e.g. DVGO's per-voxel learning rates), and `update_fn`
applies the updates (optax's by default; DVGO's writes sparse rows into its grids).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  rng: jax.Array
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  update_fn: Callable[[Any, Any], Any] = flax.struct.field(pytree_node=False,
                                                           default=optax.apply_updates)

  @classmethod
  def create(cls, *, params: Any, tx: optax.GradientTransformation, rng: jax.Array,
             model_state: Any = None, update_fn: Callable | None = None) -> "TrainState":
    """A fresh state at step 0; `rng` is a raw uint32 key (`jax.random.PRNGKey`)."""
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               model_state={} if model_state is None else model_state,
               opt_state=tx.init(params), rng=rng, tx=tx,
               update_fn=update_fn or optax.apply_updates)

  def apply_gradients(self, grads: Any, model_state: Any = None, **extra_args: Any) -> "TrainState":
    """One optimizer step; optionally swap in the new model state (e.g. BatchNorm statistics)."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params, **extra_args)
    return self.replace(step=self.step + 1, params=self.update_fn(self.params, updates),
                        opt_state=opt_state,
                        model_state=self.model_state if model_state is None else model_state)

  def with_optimizer(self, tx: optax.GradientTransformation) -> "TrainState":
    """The same state with a fresh optimizer (DVGO re-creates it at every progressive scaling)."""
    return self.replace(tx=tx, opt_state=tx.init(self.params))

  def step_rng(self, *tags: int) -> jax.Array:
    """The rng of the current step (and of an optional sub-stream), independent of history."""
    key = jax.random.fold_in(self.rng, self.step)
    for tag in tags:
      key = jax.random.fold_in(key, tag)
    return key
