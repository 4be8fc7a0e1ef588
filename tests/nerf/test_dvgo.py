"""The sparse (corner-value) gradients equal autodiff through the whole grids."""

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.nerf import dvgo
from tests.nerf.test_render import _random_scene


def test_sparse_grads_equal_dense_autodiff():
  params, buffers, spec, o, d = _random_scene(seed=3)
  target = jnp.asarray(np.random.default_rng(0).uniform(size=(o.shape[0], 3)), jnp.float32)
  weights = (1.0, 0.001, 0.01)
  grads, stats = jax.jit(lambda p: dvgo.loss_and_grads(p, buffers, o, d, target, spec, weights))(params)
  ref = jax.jit(jax.grad(lambda p: dvgo.loss_of_params(p, buffers, o, d, target, spec, weights)))(params)
  for key in ("density", "k0"):
    c = params[key].shape[-1]
    dense = np.zeros((int(np.prod(params[key].shape[:3])), c), np.float64)
    np.add.at(dense, np.asarray(grads[key].ids), np.asarray(grads[key].rows, np.float64))
    want = np.asarray(ref[key]).reshape(-1, c)
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(dense, want, atol=1e-6 * np.abs(want).max())
  for g, r in zip(jax.tree.leaves(grads["rgbnet"]), jax.tree.leaves(ref["rgbnet"])):
    np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-4, atol=1e-7)
  assert float(stats["overflow_rays"]) == 0


def test_act_shift_gives_alpha_init():
  for a in (1e-6, 1e-2):
    alpha = dvgo.alpha_grid(jnp.zeros((1, 1, 1, 1)), dvgo.act_shift(a), 1.0)
    np.testing.assert_allclose(float(alpha[0, 0, 0]), a, rtol=1e-4)
