"""Rendering whole views of a trained model: exact images, camera sets to PNGs, orbit videos
(`mode=render`, and `render.after_train`).

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
import warnings
import time

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.core import files, interrupt
from hw4_jax.core.errors import UserError
from hw4_jax.core.progress import Ticker
from hw4_jax.nerf import dvgo, scene
from hw4_jax.nerf import rays as rays_lib
from hw4_jax.nerf import raymarch as R
from hw4_jax.nerf.cameras import Camera

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

  def __init__(self, params, buffers, spec: R.RenderSpec, chunk: int = 8192, margin: float = 1.3,
               fixed_chunk: bool = False):
    self.params, self.buffers, self.spec = params, buffers, spec
    self.chunk, self.margin = int(chunk), float(margin)
    # fixed_chunk: every call uses `chunk`-ray calls, whatever the number of rays (the viewer's
    # images come in any size: one compiled function instead of one per size)
    self.fixed_chunk = bool(fixed_chunk)

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
    chunk = self.chunk
    if not self.fixed_chunk:
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

  def image(self, cam: Camera, c2w, stats: dict | None = None):
    """-> rgb [H, W, 3], depth [H, W], acc [H, W] as numpy."""
    rays_o, rays_d = rays_lib.camera_rays(cam, c2w)
    rgb, depth, acc = self.rays(rays_o.reshape(-1, 3), rays_d.reshape(-1, 3), stats)
    h, w = cam.height, cam.width
    return rgb.reshape(h, w, 3), depth.reshape(h, w), acc.reshape(h, w)


def trained_camera(meta: dict) -> tuple[Camera, tuple[int, int]]:
  """The training images' camera (at the training downscale) and their full-resolution size
  (height, width). A model.json from before intrinsics were saved has one centred focal length."""
  if "camera" in meta:
    cam = Camera(*meta["camera"])
  else:
    cam = Camera(meta["height"], meta["width"], meta["focal"], meta["focal"], meta["width"] / 2,
                 meta["height"] / 2)
  d = int(meta.get("downscale", 1))
  return cam, tuple(meta.get("full_size", (cam.height * d, cam.width * d)))


def depth_rgb(depth, acc, near: float, far: float) -> np.ndarray:
  """Expected depth (near..far) colour-mapped with turbo (near = blue, far = red), multiplied by the
  opacity so that the background (nothing hit) is black: [H, W, 3] in [0, 1]."""
  from matplotlib import colormaps
  acc = np.clip(np.asarray(acc, np.float32), 0.0, 1.0)
  d = np.asarray(depth, np.float32) / np.maximum(acc, 1e-6)
  t = np.clip((d - near) / max(far - near, 1e-6), 0.0, 1.0)
  return colormaps["turbo"](t)[..., :3].astype(np.float32) * acc[..., None]


def write_video(path: str, frames: list[np.ndarray], fps: float) -> None:
  """H.264 MP4 (yuv420p, playable everywhere) through imageio-ffmpeg; odd sizes are padded by one
  pixel (the format needs even ones)."""
  if not files.is_main_process():
    return
  import imageio.v2 as imageio
  h, w = frames[0].shape[:2]
  pad = ((0, h % 2), (0, w % 2), (0, 0))
  with files.atomic_path(path) as tmp, warnings.catch_warnings():
    # ffmpeg runs in a subprocess (fork + exec at once): JAX's fork warning does not apply
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
    with imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                            pixelformat="yuv420p", macro_block_size=1, quality=8) as writer:
      for frame in frames:
        writer.append_data(np.pad(files.to_uint8(frame), pad, mode="edge"))


def render_orbit(renderer: Renderer, meta: dict, config, out_dir: str) -> dict:
  """`render.orbit_frames` views on a circle around the training cameras' look-at centre, about
  their mean up vector, at their mean distance (or `render.orbit_radius`), `render.orbit_elevation`
  above the horizon -> orbit_rgb.mp4 and orbit_depth.mp4 at `render.fps`, the training camera
  at `data.downscale`."""
  rc = config.render
  orbit = meta.get("orbit") or {}
  buffers = renderer.buffers
  center = orbit.get("center", (np.asarray(buffers["xyz_min"]) + np.asarray(buffers["xyz_max"])) / 2)
  radius = rc.orbit_radius or orbit.get("radius", 0.5 * (meta["near"] + meta["far"]))
  poses = rays_lib.orbit_poses(int(rc.orbit_frames), float(radius), float(rc.orbit_elevation),
                               center, orbit.get("up", (0.0, 0.0, 1.0)))
  cam, full = trained_camera(meta)
  d = int(meta.get("downscale", 1))
  cam = Camera(full[0], full[1], cam.fx * d, cam.fy * d, cam.cx * d, cam.cy * d).scaled(
      int(config.data.downscale))
  frames, depths = [], []
  ticker = Ticker("render", len(poses), "frames")
  for k, c2w in enumerate(poses, 1):
    interrupt.check("the orbit is rendered again on the re-run")
    rgb, depth, acc = renderer.image(cam, c2w)
    frames.append(rgb)
    depths.append(depth_rgb(depth, acc, meta["near"], meta["far"]))
    ticker.tick(k, "orbit")
  paths = {n: os.path.join(out_dir, f"orbit_{n}.mp4") for n in ("rgb", "depth")}
  write_video(paths["rgb"], frames, float(rc.fps))
  write_video(paths["depth"], depths, float(rc.fps))
  print(f"[render] wrote {paths['rgb']} and {paths['depth']} ({len(frames)} frames, "
        f"{cam.width}x{cam.height}, {rc.fps:g} fps)", flush=True)
  return {"frames": len(frames), "width": cam.width, "height": cam.height, **paths}


def _check_names(path: str, names: list[str]) -> None:
  seen: dict = {}
  for i, name in enumerate(names):
    if name in seen:
      raise UserError(f"{path}: frames {seen[name]} and {i} would both be written to {name}.png "
                      "(their file_path names collide)")
    seen[name] = i


def render_mode(config, workdir):
  """MODES['render']: the cameras of any transforms JSON to PNGs, and/or an orbit video."""
  rc = config.render
  if not rc.transforms and not rc.orbit_frames:
    raise UserError("mode=render needs config.render.transforms (a transforms JSON) "
                    "or config.render.orbit_frames > 0")
  meta = dvgo.load_meta(workdir)
  out_dir = rc.output_dir or os.path.join(workdir, "render")
  split = None
  if rc.transforms:   # (checked before the model is loaded)
    split = scene.load_cameras(rc.transforms, int(config.data.downscale), trained_camera(meta)[1])
    _check_names(rc.transforms, split.names)
  renderer, meta = Renderer.from_workdir(workdir, rc.chunk)
  os.makedirs(out_dir, exist_ok=True)
  if split is not None:
    ticker = Ticker("render", len(split), "frames")
    for i, (c2w, name) in enumerate(zip(split.poses, split.names)):
      interrupt.check("frames already written are kept")
      rgb, depth, acc = renderer.image(split.camera(i), c2w)
      files.save_png(os.path.join(out_dir, f"{name}.png"), rgb)
      if rc.depth:
        files.save_png(os.path.join(out_dir, f"{name}_depth.png"),
                       depth_rgb(depth, acc, meta["near"], meta["far"]))
      ticker.tick(i + 1)
    print(f"[render] wrote {len(split)} PNGs ({split.width}x{split.height}) to {out_dir}",
          flush=True)
  if rc.orbit_frames:
    render_orbit(renderer, meta, config, out_dir)
