"""`mode=render`: the trained model renders the cameras of any transforms JSON (images not needed).

One PNG per frame named by the frame's `file_path` basename (`./val/r_7` -> `r_7.png`), at the
training images' size (or the JSON's `w`/`h`) with the JSON's `camera_angle_x`. Options: depth maps
(`render.depth`) and an orbit video around the scene (`render.orbit_frames` > 0, a GIF).
"""

from __future__ import annotations

import os
import time

import numpy as np

from hw4_jax.core import logging as log_lib
from hw4_jax.core.errors import UserError
from hw4_jax.nerf import evaluate, scene
from hw4_jax.nerf import rays as rays_lib


def _depth_image(depth, acc, near, far):
  """Depth to [0,1] grey (near = bright), background black."""
  d = np.clip((far - depth / np.maximum(acc, 1e-6)) / (far - near), 0.0, 1.0) * (acc > 0.5)
  return np.repeat(d[..., None], 3, -1)


def render(config, workdir):
  params, buffers, meta = evaluate.load_model(workdir)
  spec = evaluate.spec_from_meta(meta)
  rc = config.render
  out_dir = rc.output_dir or os.path.join(workdir, "render")
  if not rc.transforms and not rc.orbit_frames:
    raise UserError("mode=render needs config.render.transforms (a transforms JSON) "
                    "or config.render.orbit_frames > 0")
  split = None
  if rc.transforms:
    split = scene.load_transforms(rc.transforms, 1, with_images=False,
                                  size=(meta["height"], meta["width"]))
  os.makedirs(out_dir, exist_ok=True)
  near, far = meta["near"], meta["far"]
  if split is not None:
    t0 = time.perf_counter()
    for i, (c2w, name) in enumerate(zip(split.poses, split.names)):
      rgb, depth, acc = evaluate.render_image(params, buffers, spec, split.height, split.width,
                                              split.focal, c2w, rc.chunk)
      log_lib.save_png(os.path.join(out_dir, f"{name}.png"), rgb)
      if rc.depth:
        log_lib.save_png(os.path.join(out_dir, f"{name}_depth.png"), _depth_image(depth, acc, near, far))
      if (i + 1) % 10 == 0 or i + 1 == len(split.names):
        print(f"[render] {i + 1}/{len(split.names)} frames", flush=True)
    dt = time.perf_counter() - t0
    print(f"[render] wrote {len(split.names)} PNGs ({split.width}x{split.height}) to {out_dir} "
          f"in {dt:.1f}s ({dt / len(split.names):.2f}s/frame)", flush=True)
  if rc.orbit_frames:
    _orbit(params, buffers, spec, meta, rc, out_dir)


def _orbit(params, buffers, spec, meta, rc, out_dir):
  """A circular path around the bbox centre at the mean training camera distance -> orbit.gif."""
  import imageio.v2 as imageio
  center = (np.asarray(buffers["xyz_min"]) + np.asarray(buffers["xyz_max"])) / 2
  radius = rc.orbit_radius or 0.5 * (meta["near"] + meta["far"])
  poses = rays_lib.orbit_poses(int(rc.orbit_frames), float(radius), float(rc.orbit_elevation))
  poses[:, :3, 3] += center
  frames, depths = [], []
  for c2w in poses:
    rgb, depth, acc = evaluate.render_image(params, buffers, spec, meta["height"], meta["width"],
                                            meta["focal"], c2w, rc.chunk)
    frames.append(log_lib.to_uint8(rgb))
    depths.append(log_lib.to_uint8(_depth_image(depth, acc, meta["near"], meta["far"])))
  if log_lib.is_main_process():
    for name, seq in (("orbit.gif", frames), ("orbit_depth.gif", depths if rc.depth else None)):
      if seq is None:
        continue
      tmp = os.path.join(out_dir, f".{name}.tmp{os.getpid()}.gif")
      imageio.mimsave(tmp, seq, duration=1.0 / 15, loop=0)
      os.replace(tmp, os.path.join(out_dir, name))
  print(f"[render] wrote {os.path.join(out_dir, 'orbit.gif')} ({len(frames)} frames)", flush=True)
