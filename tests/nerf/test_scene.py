"""The Blender loader on the real lego files, and one clear error for each kind of bad input."""

import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from hw4_jax.core.errors import UserError
from hw4_jax.nerf import scene
from tests.helpers import run_main


def test_lego_loader(shared_data):
  lego = shared_data / "nerf_synthetic" / "lego"
  meta = json.loads((lego / "transforms_train.json").read_text())
  split = scene.load_split(str(lego), "train", downscale=8)
  assert split.images.shape == (100, 100, 100, 3) and split.poses.shape == (100, 4, 4)
  assert math.isclose(split.focal, 0.5 * 800 / math.tan(0.5 * meta["camera_angle_x"]) / 8, rel_tol=1e-6)
  np.testing.assert_allclose(split.poses[0], np.asarray(meta["frames"][0]["transform_matrix"]), atol=1e-6)
  assert split.names[0] == "r_0"
  # white compositing + 8x8 area average, by hand from the RGBA file
  rgba = np.asarray(Image.open(lego / "train" / "r_0.png"), np.float32) / 255.0
  comp = rgba[..., :3] * rgba[..., 3:] + 1 - rgba[..., 3:]
  np.testing.assert_allclose(split.images[0, 50, 50], comp[400:408, 400:408].mean((0, 1)), atol=1e-5)
  assert np.allclose(split.images[0, 0, 0], 1.0)          # background is white
  assert split.images.min() >= 0 and split.images.max() <= 1


def _scene(tmp_path, n=2, size=(8, 8), meta_extra=None, drop=None):
  d = tmp_path / "scene"
  (d / "train").mkdir(parents=True)
  frames = []
  for i in range(n):
    Image.fromarray(np.full((*size, 4), 200, np.uint8)).save(d / "train" / f"r_{i}.png")
    frames.append({"file_path": f"./train/r_{i}", "transform_matrix": np.eye(4).tolist()})
  meta = {"camera_angle_x": 0.69, "frames": frames, **(meta_extra or {})}
  if drop:
    meta.pop(drop)
  (d / "transforms_train.json").write_text(json.dumps(meta))
  return d


def test_bad_inputs_raise_one_user_error_naming_the_file(tmp_path):
  d = _scene(tmp_path)
  os.remove(d / "train" / "r_1.png")
  with pytest.raises(UserError, match="r_1.png"):
    scene.load_split(str(d), "train")
  (d / "train" / "r_1.png").write_bytes(b"not a png")
  with pytest.raises(UserError, match=r"r_1.png: cannot decode"):
    scene.load_split(str(d), "train")
  Image.fromarray(np.zeros((4, 8, 4), np.uint8)).save(d / "train" / "r_1.png")
  with pytest.raises(UserError, match=r"r_1.png: image size 8x4 differs"):
    scene.load_split(str(d), "train")
  for key in ("frames", "camera_angle_x"):
    d2 = _scene(tmp_path / key, drop=key)
    with pytest.raises(UserError, match=rf"transforms_train.json: missing .*'{key}'"):
      scene.load_split(str(d2), "train")
  (d / "transforms_train.json").write_text("{broken")
  with pytest.raises(UserError, match="transforms_train.json: not a readable JSON"):
    scene.load_split(str(d), "train")


def test_poses_only_json_sizes_and_names(tmp_path):
  p = tmp_path / "t.json"
  p.write_text(json.dumps({"camera_angle_x": 0.5, "w": 40, "h": 30, "frames": [
      {"file_path": "./val/r_7", "transform_matrix": np.eye(4).tolist()}]}))
  s = scene.load_transforms(str(p), with_images=False, size=(10, 10))
  assert (s.height, s.width, s.names) == (30, 40, ["r_7"]) and s.images is None
  assert math.isclose(s.focal, 20 / math.tan(0.25))


def test_cli_bad_scene_is_one_line_error_and_leaves_nothing(tmp_path):
  d = _scene(tmp_path)
  (d / "train" / "r_0.png").write_bytes(b"junk")
  work = tmp_path / "work"
  proc = run_main("--config=configs/dvgo.py:demo", f"--workdir={work}",
                  f"--config.data.scene_dir={d}", timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(err) == 1 and "r_0.png" in err[0] and "Traceback" not in proc.stderr
  assert not work.exists()


@pytest.mark.parametrize("matrix,why", [
    ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, "x"], [0, 0, 0, 1]], "not a number"),
    ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, float("nan")], [0, 0, 0, 1]], "NaN or infinite"),
    ([[1, 0, 0, float("inf")], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "NaN or infinite"),
    ([[0, 0, 0, 1], [0, 0, 0, 2], [0, 0, 0, 3], [0, 0, 0, 1]], "all-zero rotation"),
    ([[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "not a rigid"),
    ([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "not a rigid"),
    ([[1, 0, 0], [0, 1, 0], [0, 0, 1]], "not 4x4"),
])
def test_bad_poses_name_the_file_and_the_frame(tmp_path, matrix, why):
  d = _scene(tmp_path)
  meta = json.loads((d / "transforms_train.json").read_text())
  meta["frames"][1]["transform_matrix"] = matrix
  (d / "transforms_train.json").write_text(json.dumps(meta))
  with pytest.raises(UserError, match=rf"transforms_train.json: frame 1 \(./train/r_1\): .*{why}"):
    scene.load_split(str(d), "train")


@pytest.mark.parametrize("angle", [0, -0.5, float("nan"), 4.0, "wide", True])
def test_bad_camera_angle(tmp_path, angle):
  d = _scene(tmp_path, meta_extra={"camera_angle_x": angle})
  with pytest.raises(UserError, match=r"transforms_train.json: 'camera_angle_x' = .* not an angle"):
    scene.load_split(str(d), "train")


def _png16(path, arr):
  """A 16-bit PNG written by hand (zlib + the PNG chunk layout), independent of the readers."""
  import struct
  import zlib
  h, w, c = arr.shape
  raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
  chunk = lambda t, d: (struct.pack(">I", len(d)) + t + d
                        + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF))
  path.write_bytes(b"\x89PNG\r\n\x1a\n"
                   + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, {1: 0, 3: 2, 4: 6}[c], 0, 0, 0))
                   + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_16_bit_pngs_at_full_precision(tmp_path):
  grey = np.full((4, 6, 1), 30000, np.uint16)
  _png16(tmp_path / "grey.png", grey)
  np.testing.assert_allclose(scene.load_image(str(tmp_path / "grey.png")), 30000 / 65535, atol=1e-7)
  rgba = np.zeros((4, 6, 4), np.uint16)
  rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 30001, 1000, 65535, 32768
  _png16(tmp_path / "rgba.png", rgba)
  a = 32768 / 65535
  want = np.array([30001, 1000, 65535]) / 65535 * a + (1 - a)
  np.testing.assert_allclose(scene.load_image(str(tmp_path / "rgba.png"))[0, 0], want, atol=1e-6)
