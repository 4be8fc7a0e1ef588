"""Scenes: the Blender / NeRF-synthetic layout and the nerfstudio / instant-ngp layout, one loader.

- Blender: `transforms_{train,val,test}.json` (each split its own file), `camera_angle_x`.
- nerfstudio / instant-ngp: one `transforms.json`; intrinsics (`fl_x`, `fl_y`, `cx`, `cy`, `w`, `h`,
  or `camera_angle_*`) at the top level or per frame; splits from `train_filenames` /
  `val_filenames` / `test_filenames` (entries match `frames[].file_path`; a frame in no list is not
  used), else every 8th frame (0, 8, 16, ...) is held out as `test` (nerfstudio's and LLFF's rule).
Frames are PNG (RGBA composited on the background, or RGB) or JPEG, `file_path` with or without its
extension. Images are composited on `white_bkgd` and then area-averaged by the integer `downscale`
(compositing first is what a downscaled render would show); the intrinsics scale with them.
Everything that can be wrong with the input is one `UserError` naming the file (and frame).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from hw4_jax.core import files, interrupt
from hw4_jax.core.errors import UserError
from hw4_jax.nerf import cameras
from hw4_jax.nerf.cameras import Camera

SPLITS = ("train", "val", "test")
HOLDOUT_EVERY = 8


@dataclasses.dataclass
class Split:
  """Frames of one split: poses [N,4,4] camera-to-world (OpenGL), intrinsics [N,4] (fx, fy, cx, cy)
  of images height x width, names (of their renders), optional images [N,H,W,3] float32."""
  poses: np.ndarray
  intrinsics: np.ndarray
  height: int
  width: int
  names: list[str]
  images: np.ndarray | None = None

  def camera(self, i: int = 0) -> Camera:
    return Camera.from_intrinsics(self.height, self.width, self.intrinsics[i])

  def __len__(self) -> int:
    return len(self.names)


@dataclasses.dataclass
class Scene:
  """A scene folder: its layout, where its frames are, and the near / far planes to use."""
  scene_dir: str
  layout: str                        # "blender" | "nerfstudio"
  frames: dict                       # split -> [(json path, frame index, frame dict, top dict)]
  near: float
  far: float
  split_rule: str                    # how the splits were chosen (logged, in metrics.json)

  def eval_split(self, requested: str = "") -> str:
    """`requested`, or test when the scene has one (the split papers report), else val."""
    if requested:
      if requested not in self.frames:
        raise UserError(f"{self.scene_dir}: no '{requested}' split (config.eval.split); it has "
                        f"{', '.join(self.frames)}")
      return requested
    for name in ("test", "val"):
      if name in self.frames:
        return name
    raise UserError(f"{self.scene_dir}: no test or val frames to evaluate on")

  def load(self, split: str, downscale: int, white_bkgd: bool = True, with_images: bool = True,
           size: tuple[int, int] | None = None) -> Split:
    """A split's frames (images included, or only cameras: their size from the file or `size`)."""
    return _load_frames(self.frames[split], downscale, white_bkgd, with_images, size)


def frame_name(frame: dict, index: int) -> str:
  """The render's name: the file name without extension (`./val/r_7` -> `r_7`,
  `images/frame_00012.jpg` -> `frame_00012`)."""
  path = frame.get("file_path")
  if not path:
    return f"{index:03d}"
  base = os.path.basename(str(path).rstrip("/"))
  stem, ext = os.path.splitext(base)
  return stem if ext.lower() in (".png", ".jpg", ".jpeg") else base


def _image_path(json_path: str, where: str, frame: dict) -> str:
  if not isinstance(frame.get("file_path"), str) or not frame["file_path"]:
    raise UserError(f"{where}: no 'file_path'")
  path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(json_path)),
                                       frame["file_path"]))
  tried = [path] if os.path.splitext(path)[1] else [path + e for e in (".png", ".jpg", ".jpeg")]
  for candidate in tried + [path]:
    if os.path.isfile(candidate):
      return candidate
  also = f" (nor {', '.join(os.path.basename(t) for t in tried[1:])})" if len(tried) > 1 else ""
  raise UserError(f"{tried[0]}: image file not found{also} ({where})")


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


def load_image(path: str, white_bkgd: bool = True) -> np.ndarray:
  """PNG (RGBA, RGB, grey; 8 or 16 bits) or JPEG -> float32 [H,W,3] composited on the background."""
  if not os.path.isfile(path):
    raise UserError(f"{path}: image file not found")
  try:
    arr = _read_rgba(path)
  except Exception as err:  # PIL / pypng raise many types for corrupt files
    raise UserError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from None
  rgb, alpha = arr[..., :3], arr[..., 3:]
  return rgb * alpha + (1.0 - alpha) * (1.0 if white_bkgd else 0.0)


def area_downscale(image: np.ndarray, factor: int) -> np.ndarray:
  """Integer-factor area averaging (crops a remainder row/column, as cv2.INTER_AREA would)."""
  if factor == 1:
    return image
  h, w = image.shape[0] // factor, image.shape[1] // factor
  image = image[:h * factor, :w * factor]
  return image.reshape(h, factor, w, factor, -1).mean(axis=(1, 3))


def _read_json(path: str) -> dict:
  meta = files.read_json_object(path, "a transforms file with 'frames'")
  if not isinstance(meta.get("frames"), list) or not meta["frames"]:
    raise UserError(f"{path}: missing or empty key 'frames'")
  return meta


def _where(path: str, i: int, frame) -> str:
  name = frame.get("file_path") if isinstance(frame, dict) else None
  return f"{path}: frame {i}" + (f" ({name})" if name else "")


def _load_frames(entries, downscale: int, white_bkgd: bool = True, with_images: bool = True,
                 size: tuple[int, int] | None = None) -> Split:
  """Poses, intrinsics (divided by `downscale`) and, with images, the images of frames given as
  (json path, index, frame, top-level dict). Without images the size comes from `w` / `h` or
  `size` (full resolution)."""
  if int(downscale) < 1:
    raise UserError(f"config.data.downscale={downscale}: expected a positive integer")
  poses, cams, names, images, first = [], [], [], [], None
  for path, i, frame, top in entries:
    where = _where(path, i, frame)
    poses.append(cameras.pose(where, frame))
    names.append(frame_name(frame, i))
    if with_images:
      interrupt.check()
      image_path = _image_path(path, where, frame)
      img = load_image(image_path, white_bkgd)
      cam = cameras.camera(where, frame, top, size=img.shape[:2])
      if (cam.height, cam.width) != img.shape[:2]:
        raise UserError(f"{image_path}: the image is {img.shape[1]}x{img.shape[0]} but its "
                        f"intrinsics say {cam.width}x{cam.height} ({where})")
      if first is not None and img.shape != first[0]:
        raise UserError(f"{image_path}: image size {img.shape[1]}x{img.shape[0]} differs from "
                        f"{first[0][1]}x{first[0][0]} of {first[1]}")
      first = first or (img.shape, image_path)
      images.append(area_downscale(img, downscale))
    else:
      cam = cameras.camera(where, frame, top, size=size)
    cams.append(cam.scaled(downscale))
  if len({(c.height, c.width) for c in cams}) > 1:
    raise UserError(f"{entries[0][0]}: frames of different image sizes (one size per split only)")
  return Split(poses=np.stack(poses), intrinsics=np.stack([c.intrinsics() for c in cams]),
               height=cams[0].height, width=cams[0].width, names=names,
               images=np.stack(images).astype(np.float32) if with_images else None)


def _holdout(frames: list) -> tuple[dict, str]:
  held = frames[::HOLDOUT_EVERY]
  train = [f for i, f in enumerate(frames) if i % HOLDOUT_EVERY]
  return {"train": train, "test": held}, f"every {HOLDOUT_EVERY}th frame held out as test"


def _blender(scene_dir: str) -> tuple[dict, str]:
  out = {}
  for split in SPLITS:
    path = os.path.join(scene_dir, f"transforms_{split}.json")
    if os.path.isfile(path):
      meta = _read_json(path)
      out[split] = [(path, i, f, meta) for i, f in enumerate(meta["frames"])]
  if set(out) == {"train"}:   # no val / test file: hold frames out of train
    out, rule = _holdout(out["train"])
    return out, f"transforms_train.json, {rule}"
  return out, "transforms_<split>.json"


def _nerfstudio(path: str) -> tuple[dict, str]:
  meta = _read_json(path)
  frames = meta["frames"]
  lists = {s: meta[f"{s}_filenames"] for s in SPLITS if f"{s}_filenames" in meta}
  if not lists:
    split, rule = _holdout(list(range(len(frames))))
    pick, rule = split, f"{rule} (no *_filenames lists)"
  else:
    key = lambda p: os.path.normpath(str(p))
    index = {key(f.get("file_path", "")): i for i, f in enumerate(frames) if isinstance(f, dict)}
    pick = {}
    for split, names in lists.items():
      if not isinstance(names, list):
        raise UserError(f"{path}: '{split}_filenames' is not a list")
      missing = [n for n in names if key(n) not in index]
      if missing:
        raise UserError(f"{path}: '{split}_filenames' entry {missing[0]!r} matches no "
                        "frames[].file_path")
      pick[split] = [index[key(n)] for n in names]
    rule = "the " + ", ".join(f"{s}_filenames" for s in lists) + " lists"
  if not pick.get("train"):
    raise UserError(f"{path}: no training frames")
  out = {s: [(path, i, frames[i], meta) for i in ids] for s, ids in pick.items() if ids}
  return out, rule


def open_scene(scene_dir: str, near: float | None = None, far: float | None = None) -> Scene:
  """A scene folder's layout, splits and near / far (given, Blender's 2 / 6, or derived from the
  nerfstudio cameras: cameras.derived_near_far). Reads the JSON files only, no image."""
  if not os.path.isdir(scene_dir):
    raise UserError(f"{scene_dir}: scene folder not found (config.data.scene_dir)")
  single = os.path.join(scene_dir, "transforms.json")
  if os.path.isfile(single):
    frames, rule = _nerfstudio(single)
    layout = "nerfstudio"
  elif os.path.isfile(os.path.join(scene_dir, "transforms_train.json")):
    frames, rule = _blender(scene_dir)
    layout = "blender"
  else:
    raise UserError(f"{scene_dir}: no transforms.json (nerfstudio / instant-ngp) or "
                    "transforms_train.json (Blender) in the scene folder")
  for entries in frames.values():   # every pose and camera checked before any image is read
    for path, i, frame, top in entries:
      cameras.pose(_where(path, i, frame), frame)
      cameras.camera(_where(path, i, frame), frame, top, size=(1, 1))
  if near is None or far is None:
    if layout == "blender":
      auto = (2.0, 6.0)
    else:
      train = frames["train"]
      auto = cameras.derived_near_far(np.stack([cameras.pose(_where(p, i, f), f)
                                                for p, i, f, _ in train]))
    near = auto[0] if near is None else near
    far = auto[1] if far is None else far
  if not 0 <= near < far:
    raise UserError(f"{scene_dir}: near {near} and far {far} are not 0 <= near < far "
                    "(config.data.near / config.data.far)")
  return Scene(scene_dir, layout, frames, float(near), float(far), rule)


def configured(data, scene_dir: str = "") -> Scene:
  """The scene of a `config.data` block (`scene_dir`, else the generated demo scene)."""
  scene_dir = scene_dir or data.scene_dir
  if not scene_dir:
    from hw4_jax.nerf import demo_scene
    scene_dir = demo_scene.ensure()
  return open_scene(scene_dir, data.get("near"), data.get("far"))


def load_cameras(json_path: str, downscale: int, size: tuple[int, int]) -> Split:
  """The cameras of any transforms JSON (either layout; images not needed), for rendering: the
  file's intrinsics, or a Blender file's `camera_angle_x` at `size` (full resolution), divided by
  `downscale` as the training images are."""
  if not os.path.isfile(json_path):
    raise UserError(f"{json_path}: file not found")
  meta = _read_json(json_path)
  entries = [(json_path, i, f, meta) for i, f in enumerate(meta["frames"])]
  return _load_frames(entries, downscale, with_images=False, size=size)
