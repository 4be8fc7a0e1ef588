"""Frames per second of the browser viewer's renders (docs/viewer.md), through its own render loop.

    python bench/viewer_fps.py WORKDIR [--frames=20] [--aspect=1.333]

Drives `view_renders.RenderLoop` as a moving tab does (a new orbit camera as soon as each frame
arrives: previews only), then as a tab that stops at each camera (full resolution), on the model
in WORKDIR, at the viewer's defaults (the training images' longer side, preview 1/4 of it). Prints
the median render time and frames per second of each (compilation excluded: the first frames of each
are warm-up).
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hw4_jax.nerf import dvgo, rays as rays_lib, view_renders   # noqa: E402
from hw4_jax.nerf import raymarch as R   # noqa: E402
from hw4_jax.nerf.views import render_spec, trained_camera   # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdir")
  parser.add_argument("--frames", type=int, default=20)
  parser.add_argument("--aspect", type=float, default=4 / 3, help="the browser canvas's w / h")
  opts = parser.parse_args()
  params, buffers, meta = dvgo.load_model(opts.workdir)
  cam, _ = trained_camera(meta)
  frames: queue.Queue = queue.Queue()
  loop = view_renders.RenderLoop(lambda tab, frame: frames.put(frame), preview_scale=4,
                                 chunk=int(meta.get("render_chunk", 8192))).start()
  loop.set_model(params, buffers, render_spec(R.RenderSpec(**meta["spec"]), meta.get("caps")),
                 meta["near"], meta["far"])
  loop.settings(0, output="rgb", long_side=max(cam.height, cam.width))
  center = (np.asarray(buffers["xyz_min"]) + np.asarray(buffers["xyz_max"])) / 2
  orbit = meta.get("orbit") or {}
  poses = rays_lib.orbit_poses(opts.frames + 3, orbit.get("radius", 4.0), 30.0, center,
                               orbit.get("up", (0, 0, 1)))
  fov = 2 * np.arctan(0.5 * cam.height / cam.fy)
  for name, still in (("preview (moving)", False), ("full (still)", True)):
    # a camera that never / at once counts as still: only previews / only full-resolution frames
    view_renders.STILL_S = 0.0 if still else float("inf")
    times, size = [], None
    for c2w in poses:
      loop.request(0, c2w, fov, opts.aspect)
      while True:
        frame = frames.get(timeout=600)
        if frame.full == still and not frame.cached:
          break
      times.append(frame.seconds)
      size = f"{frame.camera.width}x{frame.camera.height}"
    steady = float(np.median(times[3:]))
    print(f"{name:>17}: {size}, {steady * 1000:.0f} ms per frame = {1 / steady:.1f} frames/s "
          f"(median of {len(times) - 3}; load {os.getloadavg()[0]:.2f})", flush=True)
  loop.stop()


if __name__ == "__main__":
  main()
