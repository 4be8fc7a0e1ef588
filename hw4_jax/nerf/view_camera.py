"""The browser viewer's camera (viser) <-> the project's camera (`Camera` + OpenGL camera-to-world).

viser reports a client's camera as a pose `P_world = R(wxyz) p_camera + position` in the OpenCV
convention (the camera looks down +z, y down, x right), a vertical field of view in radians and the
canvas's aspect ratio (width / height). The renderer takes OpenGL camera-to-world matrices (looks
down -z, y up: `rays.camera_rays`) and pinhole intrinsics in pixels. The two frames differ by a
rotation of pi about x: diag(1, -1, -1). Quaternions go through viser's own `transforms.SO3`.
"""

from __future__ import annotations

import math

import numpy as np

from hw4_jax.nerf.cameras import Camera

FLIP = np.diag([1.0, -1.0, -1.0])   # OpenCV <-> OpenGL camera axes (its own inverse)


def c2w_from_viser(wxyz, position) -> np.ndarray:
  """viser's camera pose -> the OpenGL camera-to-world matrix [4, 4] (float64)."""
  from viser import transforms as tf
  m = np.eye(4)
  m[:3, :3] = tf.SO3(np.asarray(wxyz, np.float64)).as_matrix() @ FLIP
  m[:3, 3] = np.asarray(position, np.float64)
  return m


def viser_from_c2w(c2w) -> tuple[np.ndarray, np.ndarray]:
  """An OpenGL camera-to-world matrix -> viser's (wxyz, position) of the same camera."""
  from viser import transforms as tf
  c2w = np.asarray(c2w, np.float64)
  return tf.SO3.from_matrix(c2w[:3, :3] @ FLIP).wxyz, c2w[:3, 3].copy()


def image_size(aspect: float, long_side: int) -> tuple[int, int]:
  """(height, width) of an image of `aspect` = width / height whose longer side is `long_side`."""
  if aspect >= 1.0:
    return max(1, int(round(long_side / aspect))), int(long_side)
  return int(long_side), max(1, int(round(long_side * aspect)))


def camera_from_fov(fov_y: float, height: int, width: int) -> Camera:
  """The pinhole camera of a `height` x `width` image with vertical field of view `fov_y` (radians),
  square pixels and the principal point at the image centre (what the browser's canvas shows)."""
  f = 0.5 * height / math.tan(0.5 * fov_y)
  return Camera(int(height), int(width), f, f, width / 2, height / 2)


def fov_of(cam: Camera) -> float:
  """A camera's vertical field of view in radians (for viser's frustums and camera)."""
  return 2.0 * math.atan(0.5 * cam.height / cam.fy)


def transforms_frame(cam: Camera, c2w) -> dict:
  """One frame of a transforms JSON (nerfstudio keys) for this view: `mode=render` renders it."""
  return {"w": cam.width, "h": cam.height, "fl_x": cam.fx, "fl_y": cam.fy, "cx": cam.cx,
          "cy": cam.cy, "transform_matrix": np.asarray(c2w, np.float64).tolist()}
