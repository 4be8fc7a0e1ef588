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
