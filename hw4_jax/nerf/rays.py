"""Camera rays (pinhole, OpenGL convention: camera looks down -z, y up), scene bounding boxes and
orbit paths.

Rays go through pixel centres (`i + 0.5`), as DVGO's default `mode='center'`, with the principal
point (cx, cy) and focal lengths (fx, fy) of the camera. Directions are not normalised: `t` along
`rays_d` is depth in front of the camera, so near/far are planes.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from hw4_jax.nerf.cameras import Camera


def pixel_dirs(cam: Camera, xp=np):
  """Camera-space directions [H, W, 3] of the pixel centres."""
  i, j = xp.meshgrid(xp.arange(cam.width, dtype=xp.float32) + 0.5,
                     xp.arange(cam.height, dtype=xp.float32) + 0.5, indexing="xy")
  return xp.stack([(i - cam.cx) / cam.fx, -(j - cam.cy) / cam.fy, -xp.ones_like(i)], -1)


def camera_rays(cam: Camera, c2w, xp=np):
  """(rays_o, rays_d) each [H, W, 3] in world space for one 3x4/4x4 camera-to-world matrix."""
  c2w = xp.asarray(c2w, xp.float32)
  rays_d = pixel_dirs(cam, xp) @ c2w[:3, :3].T
  rays_o = xp.broadcast_to(c2w[:3, 3], rays_d.shape)
  return rays_o, rays_d


def rays_from_pixels(poses, intrinsics, pix_index, height: int, width: int):
  """On device: rays for flat pixel ids `pix_index` = (image * H + row) * W + col, with each
  image's pose [N, 4, 4] and intrinsics [N, 4] (fx, fy, cx, cy)."""
  img = pix_index // (height * width)
  rem = pix_index % (height * width)
  row, col = rem // width, rem % width
  k = intrinsics[img]
  x = (col.astype(jnp.float32) + 0.5 - k[:, 2]) / k[:, 0]
  y = -(row.astype(jnp.float32) + 0.5 - k[:, 3]) / k[:, 1]
  dirs = jnp.stack([x, y, -jnp.ones_like(x)], -1)
  rays_d = jnp.einsum("nij,nj->ni", poses[img, :3, :3], dirs)
  return poses[img, :3, 3], rays_d


def normalize(v, xp=jnp):
  return v / xp.linalg.norm(v, axis=-1, keepdims=True)


def bbox_from_frustums(split, near: float, far: float) -> tuple[np.ndarray, np.ndarray]:
  """Min/max of `o + viewdir * near` and `o + viewdir * far` over every training ray (DVGO)."""
  lo = np.full(3, np.inf, np.float32)
  hi = np.full(3, -np.inf, np.float32)
  for i, c2w in enumerate(split.poses):
    o, d = camera_rays(split.camera(i), c2w)
    v = d / np.linalg.norm(d, axis=-1, keepdims=True)
    pts = np.concatenate([(o + v * near).reshape(-1, 3), (o + v * far).reshape(-1, 3)])
    lo, hi = np.minimum(lo, pts.min(0)), np.maximum(hi, pts.max(0))
  return lo, hi


def orbit_poses(n: int, radius: float, elevation_deg: float = 30.0, center=(0.0, 0.0, 0.0),
                up=(0.0, 0.0, 1.0)) -> np.ndarray:
  """A circular camera path around `center` in the plane normal to `up`, `elevation_deg` above
  it, looking at the centre: [n, 4, 4]."""
  up = np.asarray(up, np.float64) / np.linalg.norm(up)
  ref = np.array([1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
  side = ref - (ref @ up) * up            # (x and y for a z-up scene)
  side /= np.linalg.norm(side)
  fwd = np.cross(up, side)
  el = np.deg2rad(elevation_deg)
  poses = []
  for k in range(n):
    az = 2 * np.pi * k / n
    offset = np.cos(el) * (np.cos(az) * side + np.sin(az) * fwd) + np.sin(el) * up
    poses.append(look_at(np.asarray(center) + radius * offset, center, up))
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
