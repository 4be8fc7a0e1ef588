"""The stem max pool's hand-written gradient against flax's max_pool and its autodiff gradient."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw4_jax.ssl import pool


def _reference(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


@pytest.mark.parametrize("shape,relu", [
    ((2, 8, 8, 3), False),
    ((2, 9, 7, 4), False),   # odd sizes: the last window row/column hangs over the padding
    ((3, 10, 11, 2), True),  # after a ReLU most windows tie at 0: the first position must win
    ((1, 2, 2, 1), True),
])
def test_max_pool_matches_flax_values_and_gradient(shape, relu):
  kx, kd = jax.random.split(jax.random.PRNGKey(sum(shape)))
  x = jax.random.normal(kx, shape)
  if relu:
    x = jnp.round(jax.nn.relu(x) * 2) / 2  # many exact ties, zeros and positive values
  y, vjp = jax.vjp(pool.max_pool_3x3_s2, x)
  y_ref, vjp_ref = jax.vjp(_reference, x)
  np.testing.assert_array_equal(y, y_ref)
  dy = jax.random.normal(kd, y.shape)
  (got,), (want,) = vjp(dy), vjp_ref(dy)
  # Overlapping windows add up to four gradients per input, in another order than XLA's.
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  # Every output gradient goes to exactly one input position.
  np.testing.assert_allclose(got.sum(), dy.sum(), rtol=1e-5)


def test_max_pool_jits_in_bfloat16():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 6, 3), jnp.bfloat16)
  g = jax.jit(jax.grad(lambda a: pool.max_pool_3x3_s2(a).astype(jnp.float32).sum()))(x)
  assert g.dtype == jnp.bfloat16 and float(g.astype(jnp.float32).sum()) == 2 * 3 * 3 * 3
