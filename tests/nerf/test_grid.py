"""Grid math against independent references (scipy-style map_coordinates, numpy)."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.ndimage import map_coordinates

from hw4_jax.nerf import grid as G


def test_trilinear_matches_map_coordinates():
  rng = np.random.default_rng(0)
  grid = rng.normal(size=(7, 9, 5, 3)).astype(np.float32)
  lo, hi = np.array([-1.0, -2.0, 0.5], np.float32), np.array([1.5, 1.0, 2.0], np.float32)
  pts = rng.uniform(lo, hi, size=(500, 3)).astype(np.float32)
  pts[:3] = [lo, hi, (lo + hi) / 2]            # corners of the box are grid points
  got = np.asarray(G.trilinear(jnp.asarray(grid), jnp.asarray(pts), lo, hi))
  idx = (pts - lo) / (hi - lo) * (np.array(grid.shape[:3]) - 1)
  for c in range(3):
    ref = map_coordinates(jnp.asarray(grid[..., c]), list(jnp.asarray(idx.T)), order=1)
    np.testing.assert_allclose(got[:, c], np.asarray(ref), atol=1e-5)


def test_corner_weights_sum_to_one_and_ids_in_range():
  rng = np.random.default_rng(1)
  pts = jnp.asarray(rng.uniform(-1, 1, size=(100, 3)), jnp.float32)
  ids, w = G.corners(pts, jnp.full(3, -1.0), jnp.full(3, 1.0), (4, 5, 6, 1))
  np.testing.assert_allclose(np.asarray(w).sum(1), 1.0, atol=1e-6)
  assert int(ids.min()) >= 0 and int(ids.max()) < 4 * 5 * 6


def test_resample_preserves_linear_field_and_samples():
  lo, hi = np.zeros(3, np.float32), np.ones(3, np.float32)
  pts = np.asarray(G.grid_points(jnp.asarray(lo), jnp.asarray(hi), (5, 6, 7)))
  field = (pts @ np.array([1.0, -2.0, 0.5]) + 0.3)[..., None]
  up = np.asarray(G.resample(jnp.asarray(field), (9, 11, 13)))
  pts_up = np.asarray(G.grid_points(jnp.asarray(lo), jnp.asarray(hi), (9, 11, 13)))
  np.testing.assert_allclose(up[..., 0], pts_up @ np.array([1.0, -2.0, 0.5]) + 0.3, atol=1e-5)
  # n -> 2n-1 keeps every original sample and the interpolated field everywhere
  rng = np.random.default_rng(2)
  g = rng.normal(size=(4, 5, 6, 2)).astype(np.float32)
  up = np.asarray(G.resample(jnp.asarray(g), (7, 9, 11)))
  np.testing.assert_allclose(up[::2, ::2, ::2], g, atol=1e-6)
  q = jnp.asarray(rng.uniform(0, 1, size=(200, 3)), jnp.float32)
  np.testing.assert_allclose(np.asarray(G.trilinear(jnp.asarray(up), q, lo, hi)),
                             np.asarray(G.trilinear(jnp.asarray(g), q, lo, hi)), atol=1e-5)


def test_max_pool3_and_mask_lookup():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(5, 6, 7)).astype(np.float32)
  got = np.asarray(G.max_pool3(jnp.asarray(x)))
  pad = np.pad(x, 1, constant_values=-np.inf)
  ref = np.max([pad[i:i + 5, j:j + 6, k:k + 7] for i in range(3) for j in range(3)
                for k in range(3)], axis=0)
  np.testing.assert_array_equal(got, ref)
  mask = np.zeros((3, 3, 3), bool)
  mask[2, 0, 1] = True
  lo, hi = jnp.zeros(3), jnp.full(3, 2.0)
  q = jnp.asarray([[2.0, 0.0, 1.0], [1.6, 0.4, 1.4], [1.4, 0.0, 1.0], [2.6, 0.0, 1.0]])
  np.testing.assert_array_equal(np.asarray(G.mask_lookup(jnp.asarray(mask), q, lo, hi)),
                                [True, True, False, False])


def test_world_size_rule():
  size, voxel = G.world_size(np.zeros(3), np.array([2.0, 1.0, 1.0]), 2 * 50 ** 3)
  assert size == (100, 50, 50) and abs(voxel - 0.02) < 1e-9
