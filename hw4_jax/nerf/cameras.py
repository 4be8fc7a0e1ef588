"""Pinhole cameras: intrinsics from a transforms JSON (Blender or nerfstudio / instant-ngp keys),
checked poses, and the near / far planes derived from the cameras when a scene does not give them.

Intrinsics are in pixels with the principal point measured from the image's top-left corner (so the
centre of pixel (i, j) is at (i + 0.5, j + 0.5)): `fl_x`, `fl_y`, `cx`, `cy`, `w`, `h`, or
`camera_angle_x` / `camera_angle_y` (full fields of view in radians) for the focal lengths.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from hw4_jax.core.errors import UserError

DISTORTION = ("k1", "k2", "k3", "k4", "p1", "p2")
MODELS = ("PINHOLE", "OPENCV")


@dataclasses.dataclass(frozen=True)
class Camera:
  """Pinhole intrinsics: image size, focal lengths and principal point, in pixels."""
  height: int
  width: int
  fx: float
  fy: float
  cx: float
  cy: float

  def scaled(self, factor: int) -> "Camera":
    """The camera of the image area-averaged by an integer `factor` (cropped to whole blocks):
    pixel k of the small image covers [k f, (k + 1) f), so every length divides by f."""
    return Camera(self.height // factor, self.width // factor, self.fx / factor, self.fy / factor,
                  self.cx / factor, self.cy / factor)

  def intrinsics(self) -> np.ndarray:
    return np.asarray([self.fx, self.fy, self.cx, self.cy], np.float32)

  @classmethod
  def from_intrinsics(cls, height: int, width: int, k) -> "Camera":
    return cls(int(height), int(width), *(float(x) for x in k))


def _number(where: str, key: str, value, positive: bool = True) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
      positive and value <= 0):
    raise UserError(f"{where}: '{key}' = {value!r} is not a {'positive ' if positive else ''}number")
  return float(value)


def field_of_view(where: str, key: str, value) -> float:
  """A `camera_angle_*` in radians, checked to be a number in (0, pi)."""
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
      not 0.0 < value < math.pi):
    raise UserError(f"{where}: '{key}' = {value!r} is not an angle in (0, pi) radians")
  return float(value)


def camera(where: str, frame: dict, top: dict, size: tuple[int, int] | None = None) -> Camera:
  """The camera of one frame: its own keys first, then the file's top-level keys; the image size
  from `w` / `h`, else `size` (height, width: the image's, or a default for poses-only files)."""
  get = lambda key: frame.get(key, top.get(key))
  model = get("camera_model")
  if model is not None and model not in MODELS:
    raise UserError(f"{where}: camera_model {model!r} is not supported (only "
                    f"{' / '.join(MODELS)} without distortion)")
  bent = {k: get(k) for k in DISTORTION if get(k) not in (None, 0, 0.0)}
  if bent:
    raise UserError(f"{where}: lens distortion ({', '.join(f'{k}={v}' for k, v in bent.items())}) "
                    "is not supported: undistort the images first (e.g. nerfstudio's "
                    "ns-process-data or COLMAP's image_undistorter)")
  if get("w") is not None and get("h") is not None:
    width, height = (int(_number(where, k, get(k))) for k in ("w", "h"))
  elif size is not None:
    height, width = size
  else:
    raise UserError(f"{where}: no 'w' / 'h' to size the images")
  def focal(axis: str, pixels: int):
    """`fl_<axis>`, else from `camera_angle_<axis>`, else None."""
    if get(f"fl_{axis}") is not None:
      return _number(where, f"fl_{axis}", get(f"fl_{axis}"))
    angle = get(f"camera_angle_{axis}")
    if angle is not None:
      return 0.5 * pixels / math.tan(0.5 * field_of_view(where, f"camera_angle_{axis}", angle))
    return None

  fx = focal("x", width)
  if fx is None:
    raise UserError(f"{where}: no focal length ('fl_x' or 'camera_angle_x')")
  fy = focal("y", height) or fx
  cx = _number(where, "cx", get("cx"), positive=False) if get("cx") is not None else width / 2
  cy = _number(where, "cy", get("cy"), positive=False) if get("cy") is not None else height / 2
  return Camera(int(height), int(width), fx, fy, cx, cy)


def pose(where: str, frame) -> np.ndarray:
  """A frame's camera-to-world matrix (OpenGL: the camera looks down -z, y up), checked: 4x4
  numbers, finite, a rigid transform (rotation rows orthonormal, determinant +1, last row 0 0 0 1)."""
  if not isinstance(frame, dict) or "transform_matrix" not in frame:
    raise UserError(f"{where}: no 'transform_matrix'")
  rows = frame["transform_matrix"]
  if (not isinstance(rows, list) or len(rows) != 4
      or any(not isinstance(r, list) or len(r) != 4 for r in rows)):
    raise UserError(f"{where}: 'transform_matrix' is not 4x4")
  if any(isinstance(x, bool) or not isinstance(x, (int, float)) for r in rows for x in r):
    raise UserError(f"{where}: 'transform_matrix' holds a value that is not a number")
  m = np.asarray(rows, np.float64)
  if not np.all(np.isfinite(m)):
    raise UserError(f"{where}: 'transform_matrix' holds a NaN or infinite value")
  rot = m[:3, :3]
  if not np.any(rot):
    raise UserError(f"{where}: 'transform_matrix' has an all-zero rotation")
  err = float(np.abs(rot.T @ rot - np.eye(3)).max())
  if err > 1e-2 or abs(np.linalg.det(rot) - 1.0) > 1e-2 or np.abs(m[3] - [0, 0, 0, 1]).max() > 1e-6:
    raise UserError(f"{where}: 'transform_matrix' is not a rigid camera-to-world transform "
                    f"(rotation off orthonormal by {err:.3g}, determinant {np.linalg.det(rot):.3g})")
  return m.astype(np.float32)


def look_point(poses: np.ndarray) -> np.ndarray:
  """The point nearest to every camera's optical axis (least squares), where the cameras look."""
  eyes, axes = poses[:, :3, 3].astype(np.float64), -poses[:, :3, 2].astype(np.float64)
  axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
  proj = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]   # removes the component along each
  a, b = proj.sum(0), np.einsum("nij,nj->i", proj, eyes)
  if np.linalg.cond(a) > 1e6:   # (nearly) parallel axes: no single point; their centre instead
    return eyes.mean(0)
  return np.linalg.solve(a, b)


def derived_near_far(poses: np.ndarray) -> tuple[float, float]:
  """near / far for a scene that does not give them: with d the cameras' distances to the point they
  look at and r = mean(d) / 2 (the scene is taken to fill the sphere of radius r around it),
  near = max(min(d) - r, mean(d) / 100) and far = max(d) + r. (NeRF-synthetic cameras are 4.03 from
  the origin: near 2.02, far 6.05, as its official 2 / 6.)"""
  d = np.linalg.norm(poses[:, :3, 3] - look_point(poses)[None], axis=-1)
  r = float(d.mean()) / 2
  return float(max(d.min() - r, d.mean() / 100)), float(d.max() + r)
