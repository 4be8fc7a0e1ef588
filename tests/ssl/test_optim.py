"""The optimizer builder: schedule endpoints, and Adam's b1/b2 kept with weight decay (AdamW)."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from hw4_jax.ssl import optim


def test_warmup_cosine_endpoints():
  sched = optim.warmup_cosine(1e-3, 10, 110)
  np.testing.assert_allclose([sched(0), sched(10), sched(110)], [0.0, 1e-3, 0.0], atol=1e-9)


def _first_update(weight_decay: float, b1: float, b2: float):
  cfg = ml_collections.ConfigDict(dict(name="adam", lr=1.0, warmup_steps=0, b1=b1, b2=b2,
                                       weight_decay=weight_decay))
  tx, _ = optim.make_optimizer(cfg, total_steps=1000, batch_size=8)
  params = {"w": jnp.zeros((2, 2))}
  state = tx.init(params)
  grads = {"w": jnp.full((2, 2), 0.5)}
  u1, state = tx.update(grads, state, params)
  u2, _ = tx.update({"w": jnp.full((2, 2), -0.5)}, state, params)
  return np.asarray(u2["w"])


def test_adamw_uses_the_configured_betas():
  """With weight decay (AdamW branch) the second step depends on b1 exactly as plain Adam's does
  (the params are 0, so the decay term is 0 and the two must agree)."""
  for b1, b2 in ((0.9, 0.999), (0.5, 0.9)):
    np.testing.assert_allclose(_first_update(1e-4, b1, b2), _first_update(0.0, b1, b2), rtol=1e-6)
  # and the betas matter: b1 = 0.5 gives a different second step than the default 0.9
  assert not np.allclose(_first_update(1e-4, 0.5, 0.9), _first_update(1e-4, 0.9, 0.999))
  ref = optax.adam(optax.warmup_cosine_decay_schedule(0.0, 1.0, 0, 1000), b1=0.5, b2=0.9)
  p = {"w": jnp.zeros((2, 2))}
  s = ref.init(p)
  _, s = ref.update({"w": jnp.full((2, 2), 0.5)}, s, p)
  u2, _ = ref.update({"w": jnp.full((2, 2), -0.5)}, s, p)
  np.testing.assert_allclose(_first_update(1e-4, 0.5, 0.9), np.asarray(u2["w"]), rtol=1e-6)
