"""DVGO's colour MLP (features + embedded view direction -> RGB), evaluated in cache-sized chunks.

On a CPU the MLP over ~10^5 points per step is bound by memory traffic, not arithmetic: each
[points, width] activation is tens of MB, written and read several times by a plain forward and
backward. Here the points go through in chunks of `CHUNK` (a `lax.scan`), so the activations stay
in cache; the backward recomputes each chunk's forward (a custom vjp) and accumulates the weight
gradients. Weight gradients are computed as `a^T @ d` with `a^T` materialised (measured 2-4x
faster on XLA:CPU than a dot contracting the leading dimension of both operands).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

CHUNK = 4096  # points per chunk (activations of a 64-wide layer: 1 MiB)


def init(key, in_dim: int, width: int, depth: int):
  """PyTorch-default Linear init (U(+-1/sqrt(fan_in))), last bias 0, as DVGO."""
  dims = [in_dim] + [width] * (depth - 1) + [3]
  layers = []
  for i in range(len(dims) - 1):
    key, kw, kb = jax.random.split(key, 3)
    bound = 1.0 / math.sqrt(dims[i])
    w = jax.random.uniform(kw, (dims[i], dims[i + 1]), jnp.float32, -bound, bound)
    b = jax.random.uniform(kb, (dims[i + 1],), jnp.float32, -bound, bound)
    if i == len(dims) - 2:
      b = jnp.zeros_like(b)
    layers.append({"w": w, "b": b})
  return {"layers": layers}


def _inputs(feat, ray_emb, ray):
  emb = ray_emb[jnp.clip(ray, 0, ray_emb.shape[0] - 1)]
  return jnp.concatenate([feat, emb], -1)


def _forward(layers, x):
  """Hidden activations (post-ReLU, input first) and the sigmoid output of one chunk."""
  acts, h = [x], x
  for i, layer in enumerate(layers):
    h = h @ layer["w"] + layer["b"]
    if i + 1 < len(layers):
      h = jax.nn.relu(h)
      acts.append(h)
  return acts, jax.nn.sigmoid(h)


def _chunks(n: int):
  chunk = min(CHUNK, max(8, -(-n // 8) * 8))
  return chunk, -(-n // chunk)


def _split(x, chunk, count):
  pad = chunk * count - x.shape[0]
  if pad:
    x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
  return x.reshape(count, chunk, *x.shape[1:])


@jax.custom_vjp
def rgb(rgbnet, feat, ray_emb, ray, n_valid):
  """RGB [Q, 3] of points with features [Q, C] on rays `ray` [Q] (embeddings `ray_emb` [R, E]).
  Only the first `n_valid` points matter (a compacted buffer): chunks past them are skipped."""
  n = feat.shape[0]
  chunk, count = _chunks(n)
  layers = rgbnet["layers"]

  def body(_, xs):
    i, f, r = xs
    out = jax.lax.cond(i * chunk < n_valid,
                       lambda: _forward(layers, _inputs(f, ray_emb, r))[1],
                       lambda: jnp.zeros((chunk, 3), feat.dtype))
    return None, out

  xs = (jnp.arange(count), _split(feat, chunk, count), _split(ray, chunk, count))
  _, out = jax.lax.scan(body, None, xs)
  return out.reshape(-1, 3)[:n]


def _rgb_fwd(rgbnet, feat, ray_emb, ray, n_valid):
  return rgb(rgbnet, feat, ray_emb, ray, n_valid), (rgbnet, feat, ray_emb, ray, n_valid)


def _rgb_bwd(res, g):
  rgbnet, feat, ray_emb, ray, n_valid = res
  layers = rgbnet["layers"]
  n, nf = feat.shape
  chunk, count = _chunks(n)

  def chunk_grads(f, r, gc):
    acts, s = _forward(layers, _inputs(f, ray_emb, r))
    d = gc * s * (1.0 - s)
    grads = []
    for i in reversed(range(len(layers))):
      a_t = jax.lax.optimization_barrier(acts[i].T)
      grads.append({"w": a_t @ d, "b": jnp.sum(d, 0)})
      d = d @ layers[i]["w"].T
      if i > 0:
        d = jnp.where(acts[i] > 0, d, 0.0)
    return grads[::-1], d[:, :nf]

  def body(acc, xs):
    i, f, r, gc = xs
    zero = lambda: (jax.tree.map(jnp.zeros_like, layers), jnp.zeros((chunk, nf), feat.dtype))
    grads, d_feat = jax.lax.cond(i * chunk < n_valid, lambda: chunk_grads(f, r, gc), zero)
    return jax.tree.map(jnp.add, acc, grads), d_feat

  acc0 = jax.tree.map(jnp.zeros_like, layers)
  xs = (jnp.arange(count), _split(feat, chunk, count), _split(ray, chunk, count),
        _split(g, chunk, count))
  acc, d_feat = jax.lax.scan(body, acc0, xs)
  return ({"layers": acc}, d_feat.reshape(-1, nf)[:n], jnp.zeros_like(ray_emb), None, None)


rgb.defvjp(_rgb_fwd, _rgb_bwd)
