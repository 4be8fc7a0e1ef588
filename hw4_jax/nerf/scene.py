"""Blender-format scenes (NeRF synthetic): `transforms_<split>.json` + RGBA PNGs.

Images are composited on white (`rgb * a + 1 - a`) and then area-averaged by the integer
`downscale` factor (compositing first is what a downscaled render on white would show), the focal
length is scaled with them. Everything that can be wrong with the input is reported as one
`UserError` naming the file, before anything is written.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

from hw4_jax.core import files
from hw4_jax.core.errors import UserError


@dataclasses.dataclass(frozen=True)
class Camera:
  """Pinhole intrinsics shared by the views of a split (image size in pixels, focal length)."""
  height: int
  width: int
  focal: float


@dataclasses.dataclass
class Split:
  """One split: poses [N,4,4] camera-to-world (OpenGL), optional images [N,H,W,3] float32."""
  poses: np.ndarray
  height: int
  width: int
  focal: float
  names: list[str]
  images: np.ndarray | None = None

  @property
  def camera(self) -> Camera:
    return Camera(self.height, self.width, self.focal)


def _where(path: str, i: int, frame: dict) -> str:
  name = frame.get("file_path") if isinstance(frame, dict) else None
  return f"{path}: frame {i}" + (f" ({name})" if name else "")


def pose(path: str, i: int, frame) -> np.ndarray:
  """Frame i's camera-to-world matrix, checked: 4x4 numbers, finite, a rigid transform (rotation
  rows orthonormal with determinant +1, last row 0 0 0 1)."""
  where = _where(path, i, frame)
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


def field_of_view(path: str, meta: dict, key: str) -> float:
  """A `camera_angle_*` in radians, checked to be a number in (0, pi)."""
  value = meta.get(key)
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
      not 0.0 < value < math.pi):
    raise UserError(f"{path}: '{key}' = {value!r} is not an angle in (0, pi) radians")
  return float(value)


def read_transforms(path: str) -> dict:
  """The JSON with `camera_angle_x` and every frame's `transform_matrix` checked."""
  if not os.path.isfile(path):
    raise UserError(f"{path}: file not found")
  meta = files.read_json_object(path, "with 'camera_angle_x' and 'frames'")
  if "camera_angle_x" not in meta:
    raise UserError(f"{path}: missing key 'camera_angle_x'")
  if not isinstance(meta.get("frames"), list) or not meta["frames"]:
    raise UserError(f"{path}: missing or empty key 'frames'")
  field_of_view(path, meta, "camera_angle_x")
  meta["poses"] = np.stack([pose(path, i, frame) for i, frame in enumerate(meta["frames"])])
  return meta


def frame_name(frame: dict, index: int) -> str:
  """`./val/r_7` -> `r_7` (the PNG name a render gets)."""
  path = frame.get("file_path")
  if not path:
    return f"{index:03d}"
  base = os.path.basename(str(path).rstrip("/"))
  return os.path.splitext(base)[0] if base.lower().endswith(".png") else base


def _image_path(scene_dir: str, file_path: str) -> str:
  path = os.path.normpath(os.path.join(scene_dir, file_path))
  return path if path.lower().endswith(".png") else path + ".png"


def _png_bit_depth(path: str) -> int:
  with open(path, "rb") as f:
    head = f.read(25)
  return head[24] if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 25 else 8


def _read_rgba(path: str) -> np.ndarray:
  """float32 [H, W, 4] in [0, 1]. 16-bit PNGs at full precision (pypng: Pillow clips 16-bit grey at
  255 and reads 16-bit colour as 8 bits); everything else through Pillow."""
  if _png_bit_depth(path) == 16:
    import png
    width, height, rows, info = png.Reader(filename=path).asDirect()
    planes = info["planes"]
    arr = np.vstack([np.asarray(r, np.float32) for r in rows]).reshape(height, width, planes) / 65535
    color = arr[..., :1].repeat(3, -1) if planes <= 2 else arr[..., :3]
    alpha = arr[..., planes - 1:] if planes in (2, 4) else np.ones_like(arr[..., :1])
    return np.concatenate([color, alpha], -1)
  from PIL import Image
  with Image.open(path) as im:
    im.load()
    return np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0


def load_image(path: str) -> np.ndarray:
  """RGBA (or RGB, grey) PNG -> float32 [H,W,3] composited on white."""
  if not os.path.isfile(path):
    raise UserError(f"{path}: image file not found")
  try:
    arr = _read_rgba(path)
  except Exception as err:  # PIL / pypng raise many types for corrupt files
    raise UserError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from None
  rgb, alpha = arr[..., :3], arr[..., 3:]
  return rgb * alpha + (1.0 - alpha)


def area_downscale(image: np.ndarray, factor: int) -> np.ndarray:
  """Integer-factor area averaging (crops a remainder row/column, as cv2.INTER_AREA would)."""
  if factor == 1:
    return image
  h, w = image.shape[0] // factor, image.shape[1] // factor
  image = image[:h * factor, :w * factor]
  return image.reshape(h, factor, w, factor, -1).mean(axis=(1, 3))


def load_split(scene_dir: str, split: str, downscale: int = 1, with_images: bool = True) -> Split:
  """Reads `scene_dir/transforms_<split>.json` and (optionally) its images."""
  return load_transforms(os.path.join(scene_dir, f"transforms_{split}.json"), downscale,
                         with_images=with_images)


def load_transforms(json_path: str, downscale: int = 1, with_images: bool = True,
                    size: tuple[int, int] | None = None) -> Split:
  """A transforms JSON -> Split. Without images the size comes from `w`/`h`, or `size` (H, W)."""
  if int(downscale) < 1:
    raise UserError(f"data.downscale must be a positive integer, got {downscale}")
  downscale = int(downscale)
  meta = read_transforms(json_path)
  scene_dir = os.path.dirname(os.path.abspath(json_path))
  frames = meta["frames"]
  poses = meta["poses"]
  names = [frame_name(f, i) for i, f in enumerate(frames)]
  images = None
  if with_images:
    loaded, first_shape, first_path = [], None, None
    for frame in frames:
      if "file_path" not in frame:
        raise UserError(f"{json_path}: a frame has no 'file_path'")
      path = _image_path(scene_dir, frame["file_path"])
      img = load_image(path)
      if first_shape is None:
        first_shape, first_path = img.shape, path
      elif img.shape != first_shape:
        raise UserError(f"{path}: image size {img.shape[1]}x{img.shape[0]} differs from "
                        f"{first_shape[1]}x{first_shape[0]} of {first_path}")
      loaded.append(area_downscale(img, downscale))
    images = np.stack(loaded).astype(np.float32)
    height, width = images.shape[1:3]
    full_width = first_shape[1]
  elif "w" in meta and "h" in meta:
    width, height = int(meta["w"]) // downscale, int(meta["h"]) // downscale
    full_width = int(meta["w"])
  elif size is not None:
    height, width = size
    full_width = width
  else:
    raise UserError(f"{json_path}: no images loaded and no 'w'/'h' keys to size the renders")
  focal = 0.5 * full_width / math.tan(0.5 * float(meta["camera_angle_x"]))
  focal *= width / full_width
  return Split(poses=poses, height=int(height), width=int(width), focal=float(focal), names=names,
               images=images)
