"""DVGO's Adam as an optax transformation, with sparse grid gradients (the official MaskedAdam).

Grid gradients arrive as `SparseGrad(ids, rows)`: one row per gathered trilinear corner, so ids
repeat (measured on lego: 3.5-5.5 rows per distinct voxel). With `skip_zero_grad=True` (fine stage,
DVGO `skip_zero_grad_fields`) the rows are first reduced to one per distinct voxel, without a sort:
  1. every row writes its own index into a persistent per-voxel `owner` array (one write wins),
  2. reading it back gives each row a representative row of its voxel; representatives are
     compacted (prefix sum) into a list of distinct voxels of fixed capacity `unique_frac * rows`,
  3. rows are scatter-added into a small [capacity, C] buffer by their voxel's slot.
Adam then touches only those voxels (m, v and the params gathered and written once each), and
voxels whose summed gradient is exactly zero are left alone, as MaskedAdam. Were there more
distinct voxels than the capacity, the excess skips this step's update; `LeafState.unique` keeps
the count (the training loop logs it). With `skip_zero_grad=False` (coarse stage) the rows are
summed into a dense gradient and the whole grid gets plain Adam.
Per-voxel learning rates (coarse density) scale the step. Dense leaves (the MLP) get plain Adam.
The step formula is DVGO's: `p -= lr * sqrt(1-b2^t) / (1-b1^t) * m / (sqrt(v) + eps)`, with
`lr = base * 0.1 ** (t / decay_steps)` counted from the optimizer's creation (DVGO re-creates it at
every progressive-scaling step).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from hw4_jax.nerf.compact import compact_ids, round_up, scan_add


class SparseGrad(flax.struct.PyTreeNode):
  """Rows for a grid flattened to [num_voxels, C]. As a gradient: `grad[ids] += rows` (ids may
  repeat). As an update: distinct ids (out of range = padding), or a `dense` update instead."""
  ids: jax.Array      # [R] int32
  rows: jax.Array     # [R, C]
  dense: Any = None


class LeafState(NamedTuple):
  m: jax.Array
  v: jax.Array
  owner: jax.Array | None = None    # [num_voxels] int32 scratch (sparse leaves)
  unique: jax.Array | None = None   # distinct voxels in the last step's gradient


class AdamState(NamedTuple):
  count: jax.Array
  leaves: Any


_IN = "promise_in_bounds"   # grid ids come from clamped trilinear corners


def _get(table, ids):
  return table.at[ids].get(mode=_IN)


def _is_sparse(x):
  return isinstance(x, SparseGrad)


def unique_rows(ids, rows, owner, cap: int):
  """Per-voxel sums of gradient rows: (distinct ids [cap] (padding = out of range), summed rows
  [cap, C], updated owner scratch, number of distinct voxels (may exceed cap))."""
  n, n_vox = ids.shape[0], owner.shape[0]
  arange = jnp.arange(n, dtype=jnp.int32)
  owner = owner.at[ids].set(arange, mode=_IN)
  rep = _get(owner, ids)                      # the row that represents this row's voxel
  is_rep = rep == arange
  pos = scan_add(is_rep.astype(jnp.int32))
  slot = _get(pos, rep) - 1
  summed = jnp.zeros((cap, rows.shape[-1]), rows.dtype).at[slot].add(rows, mode="drop")
  src = compact_ids(is_rep, pos, cap)
  uids = jnp.where(src < n, _get(ids, jnp.minimum(src, n - 1)), n_vox)
  return uids, summed, owner, pos[-1]


def unique_capacity(n_rows: int, unique_frac: float) -> int:
  """Length of the list of distinct voxels for `n_rows` gradient rows."""
  return min(round_up(n_rows * unique_frac), round_up(n_rows))


def overflow(grads, opt_state: "AdamState", unique_frac: float, keys=("density", "k0")):
  """Distinct voxels of the last step beyond the list's capacity (their update was skipped)."""
  return sum(jnp.maximum(opt_state.leaves[k].unique - unique_capacity(grads[k].ids.shape[0],
                                                                       unique_frac), 0)
             for k in keys)


def dvgo_adam(learning_rates: Mapping[str, float], decay_steps: float, b1: float = 0.9,
              b2: float = 0.99, eps: float = 1e-8, skip_zero_grad: bool = True,
              sparse_keys: tuple[str, ...] = ("density", "k0"), unique_frac: float = 0.5):
  """Adam over a dict of params keyed like `learning_rates`; `sparse_keys` take SparseGrad."""

  def init(params):
    leaves = {}
    for key, p in params.items():
      if key in sparse_keys:
        flat = p.reshape(-1, p.shape[-1])
        owner = jnp.zeros((flat.shape[0],), jnp.int32) if skip_zero_grad else None
        leaves[key] = LeafState(jnp.zeros_like(flat), jnp.zeros_like(flat), owner,
                                jnp.zeros((), jnp.int32))
      else:
        leaves[key] = jax.tree.map(lambda x: LeafState(jnp.zeros_like(x), jnp.zeros_like(x)), p)
    return AdamState(count=jnp.zeros((), jnp.int32), leaves=leaves)

  def adam(m, v, g, lr):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return m, v, -lr * m / (jnp.sqrt(v) + eps)

  def update(grads, state, params=None, *, per_voxel_lr=None, **_):
    count = state.count + 1
    t = count.astype(jnp.float32)
    decay = 0.1 ** (t / decay_steps)
    corr = jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    updates, leaves = {}, {}
    for key, g in grads.items():
      lr = learning_rates[key] * decay * corr
      st = state.leaves[key]
      if key in sparse_keys:
        plr = None if per_voxel_lr is None else per_voxel_lr.get(key)
        updates[key], leaves[key] = (_sparse_step if skip_zero_grad else _dense_step)(g, st, lr, plr)
      else:
        out = jax.tree.map(lambda gl, sl: adam(sl.m, sl.v, gl, lr), g, st,
                           is_leaf=lambda x: isinstance(x, LeafState))
        is_out = lambda x: isinstance(x, tuple) and not isinstance(x, LeafState)
        updates[key] = jax.tree.map(lambda o: o[2], out, is_leaf=is_out)
        leaves[key] = jax.tree.map(lambda o: LeafState(o[0], o[1]), out, is_leaf=is_out)
    return updates, AdamState(count=count, leaves=leaves)

  def _sparse_step(g: SparseGrad, st: LeafState, lr, plr):
    n_vox = st.m.shape[0]
    cap = unique_capacity(g.ids.shape[0], unique_frac)
    uids, summed, owner, n_unique = unique_rows(g.ids, g.rows, st.owner, cap)
    uc = jnp.minimum(uids, n_vox - 1)
    m_old, v_old = _get(st.m, uc), _get(st.v, uc)
    m_new, v_new, step = adam(m_old, v_old, summed, lr)
    nz = summed != 0                      # MaskedAdam: zero-gradient entries keep their state
    if plr is not None:
      step = step * _get(plr, uc)[:, None]
    m = st.m.at[uids].set(jnp.where(nz, m_new, m_old), mode="drop")
    v = st.v.at[uids].set(jnp.where(nz, v_new, v_old), mode="drop")
    return SparseGrad(ids=uids, rows=jnp.where(nz, step, 0.0)), LeafState(m, v, owner, n_unique)

  def _dense_step(g: SparseGrad, st: LeafState, lr, plr):
    dense_g = jnp.zeros_like(st.m).at[g.ids].add(g.rows, mode=_IN)
    m, v, step = adam(st.m, st.v, dense_g, lr)
    if plr is not None:
      step = step * plr[:, None]
    empty = SparseGrad(ids=jnp.zeros((0,), jnp.int32), rows=jnp.zeros((0, step.shape[-1])), dense=step)
    return empty, LeafState(m, v, None, jnp.asarray(st.m.shape[0], jnp.int32))

  return optax.GradientTransformationExtraArgs(init, update)


def apply_updates(params, updates):
  """`optax.apply_updates` that also applies SparseGrad updates in place."""
  out = {}
  for key, u in updates.items():
    p = params[key]
    if _is_sparse(u):
      flat = p.reshape(-1, p.shape[-1])
      if u.dense is not None:
        flat = flat + u.dense
      else:
        flat = flat.at[u.ids].add(u.rows, mode="drop")    # distinct ids
      out[key] = flat.reshape(p.shape)
    else:
      out[key] = optax.apply_updates(p, u)
  return out
