"""Ray marching with empty-space skipping in static shapes, alpha compositing, buffer budgets (DVGO).

Each ray gets `n_slots` candidate samples every `stepdist` from where it enters the bbox (clamped
to [near, far]). Slots outside the bbox or the mask cache are dropped by compacting the survivors,
in ray order, into a fixed-capacity buffer (prefix sum + scatter, no sort). Density and alpha are
computed for the buffer only; transmittance is a prefix sum of log(1 - alpha) restarted at each
ray's first point (a segmented scan over the buffer itself). Points whose weight clears
`fast_color_thres` are compacted again into a smaller buffer that alone gets colours (the MLP). Rays
whose points did not all fit a buffer are flagged (`ray_ok`): training drops them from the loss and
counts them. `render_dense` is the same math without any compaction (the reference).

Alpha follows DVGO's post-activation: alpha = 1 - exp(-softplus(density + act_shift) * interval),
and compositing stops a ray once its transmittance falls below 1e-3 (DVGO's CUDA `alpha2weight`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.nerf import grid as grid_lib
from hw4_jax.nerf.compact import compact_ids, scan_add, segment_exclusive_scan
from hw4_jax.nerf import mlp as mlp_lib

T_STOP = 1e-3  # DVGO stops accumulating a ray when its transmittance drops below this


class RenderSpec(NamedTuple):
  """Static (hashable) render settings of one stage and grid resolution."""
  n_slots: int             # candidate samples per ray
  stepdist: float          # world distance between samples
  interval: float          # stepsize * voxel_size_ratio, the alpha activation's interval
  near: float
  far: float
  fast_color_thres: float  # drop alpha <= thres, colour only weight > thres
  bg: float                # background colour (1 = white)
  cap_points: float        # density-buffer capacity per ray (x rays)
  cap_color: float         # colour-buffer capacity per ray (x rays)
  use_mlp: bool
  viewbase_pe: int = 4


class Samples(NamedTuple):
  """The compacted density buffer (no gradients). Padding entries come last."""
  valid: jax.Array     # [P] bool
  ray: jax.Array       # [P] ray id (padding -> R)
  start: jax.Array     # [P] bool: the first point of its ray
  dist: jax.Array      # [P] distance from the ray origin along the unit direction
  pts: jax.Array       # [P, 3]
  ray_ok: jax.Array    # [R] bool: every valid slot of the ray fits the buffer
  count: jax.Array     # [] number of valid slots (may exceed P)


def capacity(n_rays: int, per_ray: float, n_slots: int) -> int:
  """Buffer size for a batch: per-ray budget x rays, at most every slot, a multiple of 8."""
  cap = min(int(math.ceil(n_rays * per_ray)), n_rays * n_slots)
  return max(8, int(math.ceil(cap / 8) * 8))


# Per-ray budgets of the two buffers (density points, coloured points) come from one ladder, so that
# shapes repeat and compiled functions are reused; training and rendering both fit them to measured
# counts and change them only when a buffer nearly overflows or sits mostly idle (a change compiles).
LADDER = tuple(float(c) for c in (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128,
                                  160, 192, 256, 320, 384, 512, 640, 768, 1024))


def fit_budgets(per_ray, n_slots: int, margin: float) -> tuple[float, float]:
  """Ladder budgets (points, colour) for measured samples per ray; colour <= points <= n_slots."""
  want = [min(next((c for c in LADDER if c >= x * margin), float(n_slots)), float(n_slots))
          for x in per_ray]
  return want[0], min(want[1], want[0])


def adapt_budgets(budgets, per_ray, n_slots: int, margin: float,
                  shrink_below: float = 2 / 3) -> tuple[float, float]:
  """New budgets when a measured count reaches 98% of its budget or the fit is under
  `shrink_below` of it (0: never shrink)."""
  want = fit_budgets(per_ray, n_slots, margin)
  if (any(x > b * 0.98 for x, b in zip(per_ray, budgets))
      or any(w < b * shrink_below for w, b in zip(want, budgets))):
    return want
  return tuple(budgets)


def ray_segments(rays_o, rays_d, xyz_min, xyz_max, near, far):
  """Entry distance (along the unit direction), unit directions and the span inside the bbox."""
  vec = jnp.where(rays_d == 0, 1e-6, rays_d)
  rate_a = (xyz_max - rays_o) / vec
  rate_b = (xyz_min - rays_o) / vec
  t_min = jnp.clip(jnp.max(jnp.minimum(rate_a, rate_b), -1), near, far)
  t_max = jnp.clip(jnp.min(jnp.maximum(rate_a, rate_b), -1), near, far)
  norm = jnp.linalg.norm(rays_d, axis=-1)
  return t_min * norm, rays_d / norm[:, None], (t_max - t_min) * norm


def slot_mask(buffers, rays_o, rays_d, spec: RenderSpec):
  """[R, S] bool of the candidate slots that are inside the bbox, the span and the mask cache.

  Computed in voxel-index space from per-ray start points and steps that are materialised first
  (a reduction): written per slot in world space, XLA fuses the per-ray bbox intersection into the
  per-slot loop and recomputes it for every slot (measured 9x slower).
  """
  lo, hi, mask = buffers["xyz_min"], buffers["xyz_max"], buffers["mask"]
  size = np.asarray(mask.shape, np.int32)
  start, dirs, span = ray_segments(rays_o, rays_d, lo, hi, spec.near, spec.far)
  scale = jnp.asarray(size - 1, jnp.float32) / (hi - lo)
  per_ray = jnp.concatenate([(rays_o + dirs * start[:, None] - lo) * scale,
                             dirs * spec.stepdist * scale,
                             jnp.maximum(jnp.ceil(span / spec.stepdist), 1.0)[:, None]], -1)
  per_ray = jnp.sum(per_ray[..., None], -1)               # a reduction: materialised once
  u0, du, n_steps = per_ray[:, None, 0:3], per_ray[:, None, 3:6], per_ray[:, 6:7]
  j = jnp.arange(spec.n_slots, dtype=jnp.float32)
  u = u0 + j[None, :, None] * du                          # [R, S, 3] continuous voxel index
  inside = jnp.all((u >= 0.0) & (u <= jnp.asarray(size - 1, jnp.float32)), -1)
  ijk = jnp.clip(jnp.round(u).astype(jnp.int32), 0, size - 1)
  flat = (ijk[..., 0] * size[1] + ijk[..., 1]) * size[2] + ijk[..., 2]
  ok = inside & (j[None] < n_steps) & mask.reshape(-1).at[flat].get(mode="promise_in_bounds")
  return ok, start, dirs


def march(buffers, rays_o, rays_d, spec: RenderSpec, cap: int | None = None, slots=None) -> Samples:
  """Sample, skip empty space and compact: the density buffer of a batch of rays.

  `cap` overrides the capacity from `spec`; `slots` = a precomputed `slot_mask` result.
  """
  n_rays, n_slots = rays_o.shape[0], spec.n_slots
  ok, start, dirs = slot_mask(buffers, rays_o, rays_d, spec) if slots is None else slots
  cap = capacity(n_rays, spec.cap_points, n_slots) if cap is None else cap
  row = scan_add(ok.astype(jnp.int32), axis=1)          # running count within each ray
  end = scan_add(row[:, -1])                            # [R] inclusive count up to each ray
  first = end - row[:, -1]                              # buffer position of each ray's first point
  src = compact_ids(ok.reshape(-1), (row + first[:, None]).reshape(-1), cap)
  valid = src < n_rays * n_slots
  ray = jnp.where(valid, src // n_slots, n_rays)
  rc = jnp.minimum(ray, n_rays - 1)
  dist = start[rc] + (src % n_slots).astype(jnp.float32) * spec.stepdist
  pts = rays_o[rc] + dirs[rc] * dist[:, None]
  starts = valid & (jnp.arange(cap, dtype=jnp.int32) == first[rc])
  return Samples(valid=valid, ray=ray, start=starts, dist=dist, pts=pts, ray_ok=end <= cap,
                 count=end[-1])


def log_transmit(density, act_shift, interval):
  """log(1 - alpha) = -softplus(density + shift) * interval (exact, no log of alpha)."""
  return -jax.nn.softplus(density + act_shift) * interval


def composite(density, smp: Samples, buffers, spec: RenderSpec, n_rays: int):
  """Alpha, weights [P] and alphainv_last [R] from the buffer's raw density [P]."""
  l = log_transmit(density, buffers["act_shift"], spec.interval)
  alpha = -jnp.expm1(l)
  keep = smp.valid & (alpha > spec.fast_color_thres)
  l = jnp.where(keep, l, 0.0)
  excl = segment_exclusive_scan(l, smp.start)           # log T before each point
  proc = keep & (excl >= math.log(T_STOP))
  weights = jnp.where(proc, jnp.exp(excl) * alpha, 0.0)
  last = jnp.exp(jax.ops.segment_sum(jnp.where(proc, l, 0.0), smp.ray, n_rays,
                                     indices_are_sorted=True))
  return alpha, weights, last


class ColorPoints(NamedTuple):
  idx: jax.Array      # [Q] index into the density buffer (padding = P)
  valid: jax.Array    # [Q]
  ray: jax.Array      # [Q] (padding -> R)
  ray_ok: jax.Array   # [R]
  count: jax.Array


def select_color(weights, smp: Samples, spec: RenderSpec, n_rays: int,
                 cap: int | None = None) -> ColorPoints:
  """Second compaction: the points whose weight clears `fast_color_thres`."""
  n = weights.shape[0]
  keep = weights > spec.fast_color_thres
  if cap is None:
    cap = capacity(n_rays, spec.cap_color, spec.n_slots)
  cap = min(cap, n)
  pos = scan_add(keep.astype(jnp.int32))
  idx = compact_ids(keep, pos, cap)
  valid = idx < n
  ray = jnp.where(valid, smp.ray[jnp.minimum(idx, n - 1)], n_rays)
  # a ray fits when the running count at its last coloured point does
  upto = jax.ops.segment_max(jnp.where(keep, pos, 0), smp.ray, n_rays, indices_are_sorted=True)
  return ColorPoints(idx=idx, valid=valid, ray=ray, ray_ok=upto <= cap, count=pos[-1])


def view_embedding(viewdirs, n_freq: int):
  """[dirs, sin(dirs * 2^k), cos(dirs * 2^k)] in DVGO's order: [R, 3 + 6 * n_freq]."""
  freq = 2.0 ** jnp.arange(n_freq, dtype=jnp.float32)
  emb = (viewdirs[..., None] * freq).reshape(*viewdirs.shape[:-1], -1)
  return jnp.concatenate([viewdirs, jnp.sin(emb), jnp.cos(emb)], -1)


def point_rgb(features, rgbnet, ray_emb, ray, spec: RenderSpec, n_valid=None):
  """RGB [Q, 3] of points from their interpolated k0 values [Q, C]: sigmoid(k0) (coarse) or the
  colour MLP on [k0, embedded view direction of the point's ray] (fine). Points past `n_valid`
  (padding at the end of a compacted buffer) may be skipped."""
  if not spec.use_mlp:
    return jax.nn.sigmoid(features)
  n_valid = features.shape[0] if n_valid is None else n_valid
  return mlp_lib.rgb(rgbnet, features, jax.lax.stop_gradient(ray_emb), ray, n_valid)


def accumulate(weights_c, rgb, ray, last, n_rays, bg):
  return jax.ops.segment_sum(weights_c[:, None] * rgb, ray, n_rays,
                             indices_are_sorted=True) + last[:, None] * bg


def unit(rays_d):
  return rays_d / jnp.linalg.norm(rays_d, axis=-1, keepdims=True)


def density_pass(params, buffers, rays_o, rays_d, spec: RenderSpec, cap=None, slots=None):
  """March + density + compositing: (samples, weights, alphainv_last)."""
  n_rays = rays_o.shape[0]
  smp = march(buffers, rays_o, rays_d, spec, cap, slots)
  density = grid_lib.trilinear(params["density"], smp.pts, buffers["xyz_min"],
                               buffers["xyz_max"])[:, 0]
  _, weights, last = composite(density, smp, buffers, spec, n_rays)
  return smp, weights, last


def color_pass(params, buffers, rays_d, smp: Samples, weights, last, spec: RenderSpec, cap=None):
  """Colours of the points that clear `fast_color_thres`, composited: rgb [R, 3], ColorPoints."""
  n_rays = rays_d.shape[0]
  col = select_color(weights, smp, spec, n_rays, cap)
  ic = jnp.minimum(col.idx, weights.shape[0] - 1)
  wc = jnp.where(col.valid, weights[ic], 0.0)
  feat = grid_lib.trilinear(params["k0"], smp.pts[ic], buffers["xyz_min"], buffers["xyz_max"])
  emb = view_embedding(unit(rays_d), spec.viewbase_pe)
  rgb = point_rgb(feat, params.get("rgbnet"), emb, col.ray, spec, col.count)
  return accumulate(wc, rgb, col.ray, last, n_rays, spec.bg), col


def render_rays(params, buffers, rays_o, rays_d, spec: RenderSpec):
  """Compacted render of a batch of rays (capacities from `spec`): rgb, depth, acc, ray_ok, counts."""
  n_rays = rays_o.shape[0]
  smp, weights, last = density_pass(params, buffers, rays_o, rays_d, spec)
  rgb, col = color_pass(params, buffers, rays_d, smp, weights, last, spec)
  depth = jax.ops.segment_sum(weights * smp.dist, smp.ray, n_rays, indices_are_sorted=True)
  return {"rgb": rgb, "depth": depth, "acc": 1.0 - last, "ray_ok": smp.ray_ok & col.ray_ok,
          "n_points": smp.count, "n_color": col.count}


def render_dense(params, buffers, rays_o, rays_d, spec: RenderSpec):
  """The reference: every slot evaluated, skipping done by masks only (same math, no buffers)."""
  n_rays, n_slots = rays_o.shape[0], spec.n_slots
  ok, start, dirs = slot_mask(buffers, rays_o, rays_d, spec)
  dist = start[:, None] + jnp.arange(n_slots, dtype=jnp.float32)[None] * spec.stepdist
  pts = (rays_o[:, None] + dirs[:, None] * dist[..., None]).reshape(-1, 3)
  density = grid_lib.trilinear(params["density"], pts, buffers["xyz_min"],
                               buffers["xyz_max"])[:, 0].reshape(n_rays, n_slots)
  l = log_transmit(density, buffers["act_shift"], spec.interval)
  alpha = -jnp.expm1(l)
  keep = ok & (alpha > spec.fast_color_thres)
  l = jnp.where(keep, l, 0.0)
  excl = jnp.pad(jnp.cumsum(l, axis=1)[:, :-1], ((0, 0), (1, 0)))
  proc = keep & (excl >= math.log(T_STOP))
  weights = jnp.where(proc, jnp.exp(excl) * alpha, 0.0)
  last = jnp.exp(jnp.sum(jnp.where(proc, l, 0.0), axis=1))
  colored = weights > spec.fast_color_thres
  feat = grid_lib.trilinear(params["k0"], pts, buffers["xyz_min"], buffers["xyz_max"])
  emb = view_embedding(unit(rays_d), spec.viewbase_pe)
  ray = jnp.repeat(jnp.arange(n_rays), n_slots)
  rgb = point_rgb(feat, params.get("rgbnet"), emb, ray, spec).reshape(n_rays, n_slots, 3)
  wc = jnp.where(colored, weights, 0.0)
  out_rgb = jnp.sum(wc[..., None] * rgb, axis=1) + last[:, None] * spec.bg
  depth = jnp.sum(weights * dist, axis=1)
  return {"rgb": out_rgb, "depth": depth, "acc": 1.0 - last,
          "ray_ok": jnp.ones((n_rays,), bool), "n_points": jnp.sum(ok), "n_color": jnp.sum(colored)}
