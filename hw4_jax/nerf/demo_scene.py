"""The embedded demo scene: a small Blender-format scene that the package ray-traces itself.

Three textured solids (a checkered sphere, a striped box, a banded sphere) with Lambert + Blinn-Phong
shading (the highlight moves with the viewer, so colour is view dependent), rendered with 2x2
supersampling into RGBA PNGs (transparent background) with transforms JSONs in the NeRF-synthetic
layout: 50 train, 10 val and 10 test views at 100x100 from the upper hemisphere. Written once into
`$HW4_JAX_CACHE/demo_scene_v1` (default `~/.cache/hw4_jax`), atomically, and reused.
"""

from __future__ import annotations

import json
import os

import numpy as np

from hw4_jax.core import files
from hw4_jax.nerf import rays as rays_lib
from hw4_jax.nerf.cameras import Camera

VERSION = "demo_scene_v1"
CAMERA_ANGLE_X = 0.6911112070083618   # as lego
SPLITS = {"train": (50, 0), "val": (10, 1), "test": (10, 2)}
LIGHT = np.array([0.4, -0.5, 0.75]) / np.linalg.norm([0.4, -0.5, 0.75])


def cache_dir() -> str:
  root = os.environ.get("HW4_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hw4_jax")
  return os.path.join(root, VERSION)


def _sphere(o, d, c, r):
  oc = o - c
  b = np.sum(oc * d, -1)
  disc = b * b - (np.sum(oc * oc, -1) - r * r)
  t = -b - np.sqrt(np.maximum(disc, 0))
  t = np.where((disc > 0) & (t > 1e-4), t, np.inf)
  return t, lambda p: (p - c) / r


def _box(o, d, c, h):
  inv = 1.0 / np.where(np.abs(d) < 1e-9, 1e-9, d)
  t0, t1 = (c - h - o) * inv, (c + h - o) * inv
  tn, tf = np.minimum(t0, t1).max(-1), np.maximum(t0, t1).min(-1)
  t = np.where((tn < tf) & (tn > 1e-4), tn, np.inf)

  def normal(p):
    q = (p - c) / h
    axis = np.argmax(np.abs(q), -1)
    n = np.zeros_like(p)
    np.put_along_axis(n, axis[:, None], np.sign(np.take_along_axis(q, axis[:, None], -1)), -1)
    return n
  return t, normal


def _albedo(kind, p, c):
  q = p - c
  if kind == 0:   # checkered sphere: 8 x 4 tiles in longitude / latitude
    lon = np.arctan2(q[:, 1], q[:, 0])
    lat = np.arcsin(np.clip(q[:, 2] / np.linalg.norm(q, axis=-1), -1, 1))
    chk = (np.floor(lon / (np.pi / 4)) + np.floor(lat / (np.pi / 4))) % 2
    return np.where(chk[:, None] > 0, [0.85, 0.15, 0.1], [0.95, 0.8, 0.2])
  if kind == 1:   # striped box
    s = np.floor((q[:, 0] + q[:, 2]) * 8) % 2
    return np.where(s[:, None] > 0, [0.1, 0.3, 0.8], [0.9, 0.9, 0.95])
  b = (np.sin(q[:, 2] * 25) > 0)   # banded sphere
  return np.where(b[:, None], [0.1, 0.6, 0.25], [0.6, 0.9, 0.5])


OBJECTS = [(0, _sphere, (np.array([0.0, 0.0, 0.3]), 0.5)),
           (1, _box, (np.array([0.55, -0.55, -0.3]), np.array([0.35, 0.25, 0.25]))),
           (2, _sphere, (np.array([-0.6, 0.5, -0.25]), 0.32))]


def trace(rays_o, rays_d):
  """RGBA [N, 4] of rays: nearest hit, Lambert + ambient + Blinn-Phong highlight."""
  d = rays_d / np.linalg.norm(rays_d, axis=-1, keepdims=True)
  best = np.full(len(d), np.inf)
  which = np.full(len(d), -1)
  normals = []
  for i, (_, fn, args) in enumerate(OBJECTS):
    t, nfn = fn(rays_o, d, *args)
    closer = t < best
    best, which = np.where(closer, t, best), np.where(closer, i, which)
    normals.append(nfn)
  rgba = np.zeros((len(d), 4))
  for i, (kind, _, args) in enumerate(OBJECTS):
    sel = which == i
    if not sel.any():
      continue
    p = rays_o[sel] + d[sel] * best[sel, None]
    n = normals[i](p)
    alb = _albedo(kind, p, args[0])
    diff = np.clip(np.sum(n * LIGHT, -1), 0, 1)[:, None]
    half = LIGHT - d[sel]
    half /= np.linalg.norm(half, axis=-1, keepdims=True)
    spec = np.clip(np.sum(n * half, -1), 0, 1)[:, None] ** 32
    rgba[sel, :3] = np.clip(alb * (0.3 + 0.7 * diff) + 0.45 * spec, 0, 1)
    rgba[sel, 3] = 1.0
  return rgba


def camera_poses(n, seed, radius=4.0):
  rng = np.random.default_rng(seed)
  az = rng.uniform(0, 2 * np.pi, n)
  el = np.deg2rad(rng.uniform(10, 70, n))
  eyes = radius * np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1)
  return np.stack([rays_lib.look_at(e, np.zeros(3)) for e in eyes])


def render_view(c2w, size=100, ss=2):
  """RGBA uint8 [size, size, 4] with ss x ss supersampling."""
  n = size * ss
  focal = 0.5 * n / np.tan(0.5 * CAMERA_ANGLE_X)
  o, d = rays_lib.camera_rays(Camera(n, n, focal, focal, n / 2, n / 2), c2w)
  rgba = trace(o.reshape(-1, 3).astype(np.float64), d.reshape(-1, 3).astype(np.float64))
  rgba = rgba.reshape(size, ss, size, ss, 4)
  a = rgba[..., 3].mean((1, 3))
  rgb = (rgba[..., :3] * rgba[..., 3:]).mean((1, 3)) / np.maximum(a, 1e-8)[..., None]
  out = np.concatenate([rgb, a[..., None]], -1)
  return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def generate(root: str, size: int = 100) -> None:
  from PIL import Image
  for split, (n, seed) in SPLITS.items():
    os.makedirs(os.path.join(root, split), exist_ok=True)
    poses = camera_poses(n, seed)
    frames = []
    for i, c2w in enumerate(poses):
      Image.fromarray(render_view(c2w, size)).save(os.path.join(root, split, f"r_{i}.png"))
      frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w.tolist()})
    with open(os.path.join(root, f"transforms_{split}.json"), "w") as f:
      json.dump({"camera_angle_x": CAMERA_ANGLE_X, "frames": frames}, f, indent=1)


def ensure() -> str:
  """The cached scene folder, generated on first use."""
  target = cache_dir()
  if not os.path.isfile(os.path.join(target, "transforms_val.json")):
    print(f"[demo] generating the demo scene in {target}", flush=True)
    with files.atomic_dir(target) as tmp:
      generate(tmp)
  return target
