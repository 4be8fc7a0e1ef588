"""Camera rays (pinhole, OpenGL convention: camera looks down -z, y up) and scene bounding boxes.

Rays go through pixel centres (`i + 0.5`), as DVGO's default `mode='center'`. Directions are not
normalised: `t` along `rays_d` is depth in front of the camera, so near/far are planes.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def pixel_dirs(height: int, width: int, focal: float, xp=np):
  """Camera-space directions [H, W, 3] of the pixel centres."""
  i, j = xp.meshgrid(xp.arange(width, dtype=xp.float32) + 0.5,
                     xp.arange(height, dtype=xp.float32) + 0.5, indexing="xy")
  return xp.stack([(i - 0.5 * width) / focal, -(j - 0.5 * height) / focal, -xp.ones_like(i)], -1)


def camera_rays(height: int, width: int, focal: float, c2w, xp=np):
  """(rays_o, rays_d) each [H, W, 3] in world space for one 3x4/4x4 camera-to-world matrix."""
  c2w = xp.asarray(c2w, xp.float32)
  dirs = pixel_dirs(height, width, focal, xp)
  rays_d = dirs @ c2w[:3, :3].T
  rays_o = xp.broadcast_to(c2w[:3, 3], rays_d.shape)
  return rays_o, rays_d


def rays_from_pixels(poses, pix_index, height: int, width: int, focal: float):
  """On device: rays for flat pixel ids `pix_index` = (image * H + row) * W + col."""
  img = pix_index // (height * width)
  rem = pix_index % (height * width)
  row, col = rem // width, rem % width
  x = (col.astype(jnp.float32) + 0.5 - 0.5 * width) / focal
  y = -(row.astype(jnp.float32) + 0.5 - 0.5 * height) / focal
  dirs = jnp.stack([x, y, -jnp.ones_like(x)], -1)
  rot = poses[img, :3, :3]
  rays_d = jnp.einsum("nij,nj->ni", rot, dirs)
  rays_o = poses[img, :3, 3]
  return rays_o, rays_d


def normalize(v, xp=jnp):
  return v / xp.linalg.norm(v, axis=-1, keepdims=True)


def bbox_from_frustums(poses: np.ndarray, height: int, width: int, focal: float, near: float,
                       far: float) -> tuple[np.ndarray, np.ndarray]:
  """Min/max of `o + viewdir * near` and `o + viewdir * far` over every training ray (DVGO)."""
  lo = np.full(3, np.inf, np.float32)
  hi = np.full(3, -np.inf, np.float32)
  for c2w in poses:
    o, d = camera_rays(height, width, focal, c2w)
    v = d / np.linalg.norm(d, axis=-1, keepdims=True)
    pts = np.concatenate([(o + v * near).reshape(-1, 3), (o + v * far).reshape(-1, 3)])
    lo, hi = np.minimum(lo, pts.min(0)), np.maximum(hi, pts.max(0))
  return lo, hi


def orbit_poses(n: int, radius: float, elevation_deg: float = 30.0) -> np.ndarray:
  """A circular camera path around the origin (z up), looking at the origin: [n, 4, 4]."""
  poses = []
  el = np.deg2rad(elevation_deg)
  for k in range(n):
    az = 2 * np.pi * k / n
    eye = radius * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    poses.append(look_at(eye, np.zeros(3)))
  return np.stack(poses).astype(np.float32)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
  """OpenGL camera-to-world matrix at `eye` looking at `target`."""
  eye, target, up = (np.asarray(a, np.float64) for a in (eye, target, up))
  back = eye - target
  back /= np.linalg.norm(back)
  right = np.cross(up, back)
  if np.linalg.norm(right) < 1e-8:
    right = np.cross(np.array([0.0, 1.0, 0.0]), back)
  right /= np.linalg.norm(right)
  cam_up = np.cross(back, right)
  m = np.eye(4)
  m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, cam_up, back, eye
  return m.astype(np.float32)
