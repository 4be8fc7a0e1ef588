"""The one train state shared by DVGO, BYOL and the classifier.

Everything a run needs to continue exactly lives in this tree: step, params, model state (BatchNorm
statistics or DVGO's non-trainable buffers), optimizer state (BYOL's EMA target lives there too) and the
base rng. Per-step randomness is `fold_in(rng, step)`, so a resumed run draws the same numbers.
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
  apply_fn: Callable = flax.struct.field(pytree_node=False)
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, *, apply_fn: Callable, params: Any, tx: optax.GradientTransformation,
             rng: jax.Array, model_state: Any = None) -> "TrainState":
    """A fresh state at step 0; `rng` is a raw uint32 key (`jax.random.PRNGKey`)."""
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               model_state={} if model_state is None else model_state,
               opt_state=tx.init(params), rng=rng, apply_fn=apply_fn, tx=tx)

  def apply_gradients(self, grads: Any, model_state: Any = None, **replace: Any) -> "TrainState":
    """One optimizer step; optionally swap in the new model state (e.g. BatchNorm stats)."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state,
                        model_state=self.model_state if model_state is None else model_state,
                        **replace)

  def step_rng(self, *tags: int) -> jax.Array:
    """The rng of the current step (and of an optional sub-stream), independent of history."""
    key = jax.random.fold_in(self.rng, self.step)
    for tag in tags:
      key = jax.random.fold_in(key, tag)
    return key
