"""DVGO Adam (optax transformation) against a numpy reference of the official update."""

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.nerf.masked_adam import SparseGrad, apply_updates, dvgo_adam


def _ref_step(p, m, v, g, t, lr, mask=None, plr=None, b1=0.9, b2=0.99, eps=1e-8):
  """The official (Masked)Adam update, dense numpy."""
  step = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
  m2, v2 = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
  upd = -step * m2 / (np.sqrt(v2) + eps) * (1 if plr is None else plr[:, None])
  if mask is None:
    return p + upd, m2, v2
  return (np.where(mask, p + upd, p), np.where(mask, m2, m), np.where(mask, v2, v))


def _run(skip_zero_grad, per_voxel_lr):
  rng = np.random.default_rng(0)
  nvox, ch = 40, 3
  params = {"density": jnp.asarray(rng.normal(size=(2, 4, 5, 1)), jnp.float32),
            "k0": jnp.asarray(rng.normal(size=(2, 4, 5, ch)), jnp.float32),
            "rgbnet": {"w": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)}}
  lrs, decay = {"density": 0.1, "k0": 0.05, "rgbnet": 1e-3}, 1000.0
  tx = dvgo_adam(lrs, decay, skip_zero_grad=skip_zero_grad, unique_frac=1.0)
  state = tx.init(params)
  plr = rng.uniform(0.2, 1.0, size=nvox).astype(np.float32) if per_voxel_lr else None
  ref = {k: (np.asarray(params[k]).reshape(nvox, -1), np.zeros((nvox, params[k].shape[-1])),
             np.zeros((nvox, params[k].shape[-1]))) for k in ("density", "k0")}
  ref_w = (np.asarray(params["rgbnet"]["w"]), np.zeros((3, 2)), np.zeros((3, 2)))
  update = jax.jit(lambda g, s, p: tx.update(g, s, p, per_voxel_lr=None if plr is None else
                                             {"density": jnp.asarray(plr)}))
  for t in range(1, 5):
    grads, dense = {}, {}
    for k in ("density", "k0"):
      c = params[k].shape[-1]
      ids = rng.integers(0, nvox // 2, size=30)        # repeats, and half the voxels untouched
      rows = rng.normal(size=(30, c)).astype(np.float32)
      rows[:3] = 0.0
      grads[k] = SparseGrad(ids=jnp.asarray(ids, jnp.int32), rows=jnp.asarray(rows))
      dense[k] = np.zeros((nvox, c))
      np.add.at(dense[k], ids, rows)
    gw = rng.normal(size=(3, 2)).astype(np.float32)
    grads["rgbnet"] = {"w": jnp.asarray(gw)}
    updates, state = update(grads, state, params)
    params = apply_updates(params, updates)
    for k in ("density", "k0"):
      lr = lrs[k] * 0.1 ** (t / decay)
      mask = (dense[k] != 0) if skip_zero_grad else None
      ref[k] = _ref_step(*ref[k], dense[k], t, lr, mask, plr if k == "density" else None)
      np.testing.assert_allclose(np.asarray(params[k]).reshape(nvox, -1), ref[k][0], rtol=1e-5,
                                 atol=1e-6)
    ref_w = _ref_step(*ref_w, gw, t, lrs["rgbnet"] * 0.1 ** (t / decay))
    np.testing.assert_allclose(np.asarray(params["rgbnet"]["w"]), ref_w[0], rtol=1e-5, atol=1e-7)
    if skip_zero_grad:            # distinct voxels counted
      assert int(state.leaves["k0"].unique) == len(np.unique(np.asarray(grads["k0"].ids)))
  return params


def test_sparse_masked_adam_matches_reference():
  _run(skip_zero_grad=True, per_voxel_lr=False)


def test_dense_adam_with_per_voxel_lr_matches_reference():
  _run(skip_zero_grad=False, per_voxel_lr=True)


def test_unique_rows_sums_per_voxel_and_counts_overflow():
  from hw4_jax.nerf.masked_adam import unique_rows
  rng = np.random.default_rng(5)
  ids = rng.integers(0, 50, size=200).astype(np.int32)
  rows = rng.normal(size=(200, 3)).astype(np.float32)
  owner = jnp.asarray(rng.integers(-5, 300, size=50), jnp.int32)   # stale garbage is fine
  n_distinct = len(np.unique(ids))
  for cap in (64, 16):
    uids, summed, _, count = jax.jit(unique_rows, static_argnums=3)(
        jnp.asarray(ids), jnp.asarray(rows), owner, cap)
    assert int(count) == n_distinct
    uids, summed = np.asarray(uids), np.asarray(summed)
    kept = uids < 50
    assert kept.sum() == min(cap, n_distinct) and len(np.unique(uids[kept])) == kept.sum()
    for u, s in zip(uids[kept], summed[kept]):
      np.testing.assert_allclose(s, rows[ids == u].sum(0), rtol=1e-5, atol=1e-5)
    assert np.all(summed[~kept] == 0)
