"""The chunked colour MLP (custom vjp) against a plain autodiff MLP."""

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.nerf import mlp


def _plain(rgbnet, feat, ray_emb, ray):
  h = jnp.concatenate([feat, ray_emb[ray]], -1)
  for i, layer in enumerate(rgbnet["layers"]):
    h = h @ layer["w"] + layer["b"]
    if i + 1 < len(rgbnet["layers"]):
      h = jax.nn.relu(h)
  return jax.nn.sigmoid(h)


def test_chunked_mlp_matches_plain_autodiff(monkeypatch):
  monkeypatch.setattr(mlp, "CHUNK", 64)          # several chunks and a ragged last one
  rng = np.random.default_rng(0)
  n, n_rays = 300, 20
  net = mlp.init(jax.random.PRNGKey(0), 12 + 27, 32, 3)
  feat = jnp.asarray(rng.normal(size=(n, 12)), jnp.float32)
  emb = jnp.asarray(rng.normal(size=(n_rays, 27)), jnp.float32)
  ray = jnp.asarray(rng.integers(0, n_rays, size=n), jnp.int32)
  w = jnp.asarray(rng.normal(size=(n, 3)), jnp.float32)
  np.testing.assert_allclose(np.asarray(mlp.rgb(net, feat, emb, ray, n)),
                             np.asarray(_plain(net, feat, emb, ray)), rtol=1e-5, atol=1e-6)
  loss = lambda f: lambda p, x: jnp.sum(w * f(p, x, emb, ray))
  got = jax.grad(loss(lambda *a: mlp.rgb(*a, n)), argnums=(0, 1))(net, feat)
  want = jax.grad(loss(_plain), argnums=(0, 1))(net, feat)
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-4, atol=1e-5)


def test_points_past_n_valid_are_skipped(monkeypatch):
  monkeypatch.setattr(mlp, "CHUNK", 64)
  rng = np.random.default_rng(1)
  net = mlp.init(jax.random.PRNGKey(1), 12 + 27, 16, 3)
  feat = jnp.asarray(rng.normal(size=(256, 12)), jnp.float32)
  emb = jnp.asarray(rng.normal(size=(4, 27)), jnp.float32)
  ray = jnp.zeros((256,), jnp.int32)
  out = np.asarray(mlp.rgb(net, feat, emb, ray, 100))
  np.testing.assert_allclose(out[:100], np.asarray(_plain(net, feat, emb, ray))[:100], rtol=1e-5)
  assert np.all(out[128:] == 0)          # whole chunks past the valid points are not computed
