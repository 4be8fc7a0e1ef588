"""Whole-image rendering, the trained-model file, and PSNR / SSIM / LPIPS-VGG on a split.

Images are rendered in fixed-size ray chunks with fixed buffer capacities (the per-ray budgets the
training settled on, saved with the model), so one compiled function serves every view: on a CPU a
new shape costs seconds of compilation. Rays whose samples did not fit (flagged by the renderer)
are rendered again in small chunks whose buffers hold every slot, so the image is exact.
The model file (`model.npz` + `model.json`) is what `mode=render` / `mode=eval` load.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.core import logging as log_lib
from hw4_jax.core.errors import UserError
from hw4_jax.nerf import rays as rays_lib
from hw4_jax.nerf import render as R

RETRY_CHUNK = 256   # rays per chunk when re-rendering overflowed rays with room for every slot


@functools.lru_cache(maxsize=16)
def _render_fn(spec: R.RenderSpec):
  def fn(params, buffers, rays_o, rays_d):
    out = R.render_rays(params, buffers, rays_o, rays_d, spec)
    return out["rgb"], out["depth"], out["acc"], out["ray_ok"], out["n_points"], out["n_color"]
  return jax.jit(fn)


def _pad(x, n, value):
  return np.concatenate([x, np.full((n - x.shape[0], 3), value, np.float32)]) if n > x.shape[0] else x


# Per-ray sample budgets for rendering, learned from the chunks rendered so far in this process
# (keyed by the spec without its capacities): whole images average far fewer samples per ray than
# the training rays, which all hit the scene, so the training budgets would mostly hold padding.
_SEEN: dict = {}
LADDER = (8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 72, 80, 96, 112, 128, 160, 192, 256, 320, 384,
          512, 640, 768, 1024)


def _budget(x: float, n_slots: int, margin: float = 1.3) -> float:
  return float(min(next((c for c in LADDER if c >= margin * x), n_slots), n_slots))


def render_rays_exact(params, buffers, spec: R.RenderSpec, rays_o, rays_d, chunk=8192, stats=None):
  """rgb [N, 3], depth [N], acc [N] (numpy) of any number of rays; nothing overflows.

  Chunk k takes every n-th ray from k (an image's rows interleaved), so every chunk sees the same
  mix of empty and busy rays and fixed budgets rarely overflow; rays that do are rendered again
  with 4x the budgets, then with room for every slot.
  """
  rays_o, rays_d = np.asarray(rays_o, np.float32), np.asarray(rays_d, np.float32)
  n = rays_o.shape[0]
  key = spec._replace(cap_points=0.0, cap_color=0.0)
  if key in _SEEN:
    spec = spec._replace(cap_points=_SEEN[key][0], cap_color=_SEEN[key][1])
  chunk = min(chunk, max(256, int(math.ceil(n / 256) * 256)))
  n_chunks = -(-n // chunk)
  order = np.concatenate([np.arange(k, n, n_chunks) for k in range(n_chunks)])
  bigger = spec._replace(cap_points=min(4 * spec.cap_points, spec.n_slots),
                         cap_color=min(4 * spec.cap_color, spec.n_slots))
  full = spec._replace(cap_points=float(spec.n_slots), cap_color=float(spec.n_slots))
  rgb, depth, acc = np.zeros((n, 3), np.float32), np.zeros((n,), np.float32), np.zeros((n,), np.float32)
  todo, points, color, redone, busiest = order, 0, 0, 0, (0.0, 0.0)
  for tier, (size, sp) in enumerate(((chunk, spec), (1024, bigger), (RETRY_CHUNK, full))):
    left = []
    for i in range(0, len(todo), size):
      sel = todo[i:i + size]
      # padding rays start far away and point away: no samples, no cost
      o, d = _pad(rays_o[sel], size, 1e6), _pad(rays_d[sel], size, 1.0)
      out = jax.device_get(_render_fn(sp)(params, buffers, jnp.asarray(o), jnp.asarray(d)))
      ok = out[3][:len(sel)]
      rgb[sel[ok]], depth[sel[ok]], acc[sel[ok]] = (x[:len(sel)][ok] for x in out[:3])
      left.append(sel[~ok])
      if tier == 0:
        points, color = points + int(out[4]), color + int(out[5])
        busiest = tuple(max(b, int(c) / len(sel)) for b, c in zip(busiest, out[4:6]))
    todo = np.concatenate(left)
    redone += len(todo)
    if not len(todo):
      break
  if len(todo):
    raise RuntimeError("a ray overflowed a buffer that holds every slot")
  if n >= chunk // 2:    # a representative sample: budgets for the next images, changed only when
    # they would overflow or sit mostly idle (each change compiles the renderer again)
    want = tuple(_budget(x, spec.n_slots) for x in busiest)
    have = (spec.cap_points, spec.cap_color)
    if any(w > h for w, h in zip(want, have)) or any(w < h / 1.5 for w, h in zip(want, have)):
      roomy = tuple(_budget(x, spec.n_slots, 1.5) for x in busiest)   # more room when shrinking
      _SEEN[key] = tuple(w if w > h else min(r, h) for w, r, h in zip(want, roomy, have))
  if stats is not None:
    stats["points"] = stats.get("points", 0) + points
    stats["color"] = stats.get("color", 0) + color
    stats["rays"] = stats.get("rays", 0) + n
    stats["rerendered_rays"] = stats.get("rerendered_rays", 0) + redone
  return rgb, depth, acc


def render_image(params, buffers, spec: R.RenderSpec, height, width, focal, c2w, chunk=8192,
                 stats=None):
  """-> rgb [H, W, 3], depth [H, W], acc [H, W] as numpy."""
  rays_o, rays_d = rays_lib.camera_rays(height, width, focal, c2w)
  rgb, depth, acc = render_rays_exact(params, buffers, spec, rays_o.reshape(-1, 3),
                                      rays_d.reshape(-1, 3), chunk, stats)
  return rgb.reshape(height, width, 3), depth.reshape(height, width), acc.reshape(height, width)


def save_model(workdir, params, buffers, meta):
  """Atomic `model.npz` (params + buffers) and `model.json` (static geometry, camera, config)."""
  if not log_lib.is_main_process():
    return
  flat = {}
  for prefix, tree in (("params", params), ("buffers", buffers)):
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
      flat[prefix + jax.tree_util.keystr(path)] = np.asarray(leaf)
  tmp = os.path.join(workdir, f"model.tmp{os.getpid()}.npz")
  np.savez(tmp, **flat)
  os.replace(tmp, os.path.join(workdir, "model.npz"))
  log_lib.write_json(os.path.join(workdir, "model.json"), meta)


def load_model(workdir):
  """-> (params, buffers, meta) of a trained workdir, or UserError when there is none."""
  npz, js = os.path.join(workdir, "model.npz"), os.path.join(workdir, "model.json")
  if not (os.path.isfile(npz) and os.path.isfile(js)):
    raise UserError(f"{workdir}: no trained model (model.npz/model.json); run mode=train first")
  with open(js) as f:
    meta = json.load(f)
  data = np.load(npz)
  layers = meta["mlp_layers"]
  params = {"density": jnp.asarray(data["params['density']"]), "k0": jnp.asarray(data["params['k0']"])}
  if layers:
    params["rgbnet"] = {"layers": [
        {"w": jnp.asarray(data[f"params['rgbnet']['layers'][{i}]['w']"]),
         "b": jnp.asarray(data[f"params['rgbnet']['layers'][{i}]['b']"])} for i in range(layers)]}
  buffers = {k: jnp.asarray(data[f"buffers['{k}']"]) for k in ("xyz_min", "xyz_max", "act_shift", "mask")}
  return params, buffers, meta


def render_spec(spec: R.RenderSpec, caps=None) -> R.RenderSpec:
  """The spec rendering uses: the training's final per-ray budgets (`caps`) with some room, as
  whole images average fewer samples per ray than the training rays (which all hit the scene)."""
  cap_p, cap_c = caps if caps is not None else (spec.cap_points, spec.cap_color)
  return spec._replace(cap_points=float(math.ceil(cap_p * 1.25)),
                       cap_color=float(math.ceil(max(cap_c, 1.0) * 1.25)))


def spec_from_meta(meta) -> R.RenderSpec:
  return render_spec(R.RenderSpec(**meta["spec"]), meta.get("caps"))


def evaluate_split(params, buffers, spec, split, chunk, out_dir=None, lpips=True, log=print):
  """Renders every view of a split with images; PSNR/SSIM/LPIPS per view and means."""
  from hw4_jax.core import metrics
  per_view, stats, render_times = [], {}, []
  t0 = time.perf_counter()
  for i, (c2w, name) in enumerate(zip(split.poses, split.names)):
    t1 = time.perf_counter()
    rgb, _, _ = render_image(params, buffers, spec, split.height, split.width, split.focal, c2w,
                             chunk, stats)
    render_times.append(time.perf_counter() - t1)
    gt = split.images[i]
    row = {"name": name, "psnr": float(metrics.psnr(rgb, gt)[0]),
           "ssim": float(metrics.ssim(rgb, gt)[0])}
    if lpips:
      row["lpips_vgg"] = float(metrics.lpips(rgb[None], gt[None], net="vgg")[0])
    per_view.append(row)
    if out_dir:
      log_lib.save_png(os.path.join(out_dir, f"{name}.png"), rgb)
    if (i + 1) % 10 == 0 or i + 1 == len(split.names):
      log(f"[eval] {i + 1}/{len(split.names)} views | psnr so far "
          f"{np.mean([r['psnr'] for r in per_view]):.2f}")
  seconds = time.perf_counter() - t0
  result = {"psnr": float(np.mean([r["psnr"] for r in per_view])),
            "ssim": float(np.mean([r["ssim"] for r in per_view])),
            "lpips_vgg": float(np.mean([r["lpips_vgg"] for r in per_view])) if lpips else None,
            "per_view": per_view,
            "eval_seconds": seconds,
            # the first view includes compilation; the median is the steady-state cost
            "render_seconds_per_view": float(np.median(render_times)),
            "render_stats": {"points_per_ray": stats["points"] / max(stats["rays"], 1),
                             "color_points_per_ray": stats["color"] / max(stats["rays"], 1),
                             "rerendered_rays": stats.get("rerendered_rays", 0)}}
  return result
