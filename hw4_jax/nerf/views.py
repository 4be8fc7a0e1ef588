"""Rendering whole views of a trained model: exact images, camera sets to PNGs, an orbit (`mode=render`).

Images are rendered in fixed-size ray chunks with fixed buffer budgets (one compiled function serves
every view: on a CPU a new shape costs seconds of compilation). Rays whose samples did not fit
(flagged by the renderer) are rendered again with 4x the budgets, then with room for every slot, so
the image is exact whatever the budgets. The budgets start from the training's final ones and follow
the counts measured on whole images (which average fewer samples per ray than the training rays,
which all hit the scene), per `Renderer`.
"""

from __future__ import annotations

import functools
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.core import files
from hw4_jax.core.errors import UserError
from hw4_jax.nerf import dvgo, scene
from hw4_jax.nerf import rays as rays_lib
from hw4_jax.nerf import raymarch as R

RETRY_CHUNK = 256   # rays per chunk when re-rendering overflowed rays with room for every slot


def render_spec(spec: R.RenderSpec, caps=None) -> R.RenderSpec:
  """The spec rendering starts from: the training's final per-ray budgets (`caps`) with some room."""
  cap_p, cap_c = caps if caps is not None else (spec.cap_points, spec.cap_color)
  return spec._replace(cap_points=float(math.ceil(cap_p * 1.25)),
                       cap_color=float(math.ceil(max(cap_c, 1.0) * 1.25)))


@functools.partial(jax.jit, static_argnames=("spec",))
def _render_chunk(params, buffers, rays_o, rays_d, spec: R.RenderSpec):
  out = R.render_rays(params, buffers, rays_o, rays_d, spec)
  return out["rgb"], out["depth"], out["acc"], out["ray_ok"], out["n_points"], out["n_color"]


def _pad(x, n, value):
  return np.concatenate([x, np.full((n - x.shape[0], 3), value, np.float32)]) if n > x.shape[0] else x


class Renderer:
  """Exact rendering of any number of rays / whole images of one model (params + buffers)."""

  def __init__(self, params, buffers, spec: R.RenderSpec, chunk: int = 8192, margin: float = 1.3):
    self.params, self.buffers, self.spec = params, buffers, spec
    self.chunk, self.margin = int(chunk), float(margin)

  @classmethod
  def from_workdir(cls, workdir: str, chunk: int = 8192) -> tuple["Renderer", dict]:
    params, buffers, meta = dvgo.load_model(workdir)
    return cls(params, buffers, render_spec(R.RenderSpec(**meta["spec"]), meta.get("caps")),
               chunk), meta

  def rays(self, rays_o, rays_d, stats: dict | None = None):
    """rgb [N, 3], depth [N], acc [N] (numpy) of any number of rays; nothing overflows.

    Chunk k takes every n-th ray from k (an image's rows interleaved), so every chunk sees the same
    mix of empty and busy rays and the budgets rarely overflow."""
    rays_o, rays_d = np.asarray(rays_o, np.float32), np.asarray(rays_d, np.float32)
    n, spec = rays_o.shape[0], self.spec
    chunk = min(self.chunk, max(256, int(math.ceil(n / 256) * 256)))
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
        out = jax.device_get(_render_chunk(self.params, self.buffers, jnp.asarray(o), jnp.asarray(d),
                                           sp))
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
    if n >= chunk // 2:   # a representative sample: budgets for the next images
      have = (spec.cap_points, spec.cap_color)
      new = R.adapt_budgets(have, busiest, spec.n_slots, self.margin)
      self.spec = spec._replace(cap_points=new[0], cap_color=new[1])
    if stats is not None:
      for key, value in (("points", points), ("color", color), ("rays", n), ("rerendered_rays", redone)):
        stats[key] = stats.get(key, 0) + value
    return rgb, depth, acc

  def image(self, cam: scene.Camera, c2w, stats: dict | None = None):
    """-> rgb [H, W, 3], depth [H, W], acc [H, W] as numpy."""
    rays_o, rays_d = rays_lib.camera_rays(cam.height, cam.width, cam.focal, c2w)
    rgb, depth, acc = self.rays(rays_o.reshape(-1, 3), rays_d.reshape(-1, 3), stats)
    h, w = cam.height, cam.width
    return rgb.reshape(h, w, 3), depth.reshape(h, w), acc.reshape(h, w)


def depth_image(depth, acc, near, far):
  """Depth to [0,1] grey (near = bright), background black."""
  d = np.clip((far - depth / np.maximum(acc, 1e-6)) / (far - near), 0.0, 1.0) * (acc > 0.5)
  return np.repeat(d[..., None], 3, -1)


def render_mode(config, workdir):
  """MODES['render']: the cameras of any transforms JSON to PNGs, and/or an orbit."""
  rc = config.render
  if not rc.transforms and not rc.orbit_frames:
    raise UserError("mode=render needs config.render.transforms (a transforms JSON) "
                    "or config.render.orbit_frames > 0")
  meta = dvgo.load_meta(workdir)
  out_dir = rc.output_dir or os.path.join(workdir, "render")
  split = None
  if rc.transforms:   # (checked before the model is loaded)
    split = scene.load_transforms(rc.transforms, 1, with_images=False,
                                  size=(meta["height"], meta["width"]))
    seen: dict = {}
    for i, name in enumerate(split.names):
      if name in seen:
        raise UserError(f"{rc.transforms}: frames {seen[name]} and {i} would both be written to "
                        f"{name}.png (their file_path names collide)")
      seen[name] = i
  renderer, meta = Renderer.from_workdir(workdir, rc.chunk)
  os.makedirs(out_dir, exist_ok=True)
  near, far = meta["near"], meta["far"]
  if split is not None:
    t0 = time.perf_counter()
    for i, (c2w, name) in enumerate(zip(split.poses, split.names)):
      rgb, depth, acc = renderer.image(split.camera, c2w)
      files.save_png(os.path.join(out_dir, f"{name}.png"), rgb)
      if rc.depth:
        files.save_png(os.path.join(out_dir, f"{name}_depth.png"), depth_image(depth, acc, near, far))
      if (i + 1) % 10 == 0 or i + 1 == len(split.names):
        print(f"[render] {i + 1}/{len(split.names)} frames", flush=True)
    dt = time.perf_counter() - t0
    print(f"[render] wrote {len(split.names)} PNGs ({split.width}x{split.height}) to {out_dir} "
          f"in {dt:.1f}s ({dt / len(split.names):.2f}s/frame)", flush=True)
  if rc.orbit_frames:
    _orbit(renderer, meta, rc, out_dir)


def _orbit(renderer: Renderer, meta, rc, out_dir):
  """A circular path around the bbox centre at the mean training camera distance -> orbit.gif."""
  import imageio.v2 as imageio
  buffers = renderer.buffers
  center = (np.asarray(buffers["xyz_min"]) + np.asarray(buffers["xyz_max"])) / 2
  radius = rc.orbit_radius or 0.5 * (meta["near"] + meta["far"])
  poses = rays_lib.orbit_poses(int(rc.orbit_frames), float(radius), float(rc.orbit_elevation))
  poses[:, :3, 3] += center
  cam = scene.Camera(height=meta["height"], width=meta["width"], focal=meta["focal"])
  frames, depths = [], []
  for c2w in poses:
    rgb, depth, acc = renderer.image(cam, c2w)
    frames.append(files.to_uint8(rgb))
    depths.append(files.to_uint8(depth_image(depth, acc, meta["near"], meta["far"])))
  if files.is_main_process():
    for name, seq in (("orbit.gif", frames), ("orbit_depth.gif", depths if rc.depth else None)):
      if seq is not None:
        with files.atomic_path(os.path.join(out_dir, name)) as tmp:
          imageio.mimsave(tmp, seq, duration=1.0 / 15, loop=0)
  print(f"[render] wrote {os.path.join(out_dir, 'orbit.gif')} ({len(frames)} frames)", flush=True)
