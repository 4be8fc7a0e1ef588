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


def _load(d, split="train", downscale=1, **kw):
  return scene.open_scene(str(d)).load(split, downscale, **kw)


def test_lego_loader(shared_data):
  lego = shared_data / "nerf_synthetic" / "lego"
  meta = json.loads((lego / "transforms_train.json").read_text())
  sc = scene.open_scene(str(lego))
  assert (sc.layout, sc.near, sc.far, sc.eval_split()) == ("blender", 2.0, 6.0, "val")
  split = sc.load("train", downscale=8)
  assert split.images.shape == (100, 100, 100, 3) and split.poses.shape == (100, 4, 4)
  cam = split.camera(0)
  assert math.isclose(cam.fx, 0.5 * 800 / math.tan(0.5 * meta["camera_angle_x"]) / 8, rel_tol=1e-6)
  assert cam.fy == cam.fx and (cam.cx, cam.cy) == (50.0, 50.0)
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
  d = _scene(tmp_path, n=3)   # (frame 0 is held out: no val / test file)
  os.remove(d / "train" / "r_1.png")
  with pytest.raises(UserError, match="r_1.png"):
    _load(d)
  (d / "train" / "r_1.png").write_bytes(b"not a png")
  with pytest.raises(UserError, match=r"r_1.png: cannot decode"):
    _load(d)
  Image.fromarray(np.zeros((4, 8, 4), np.uint8)).save(d / "train" / "r_1.png")
  with pytest.raises(UserError, match=r"r_2.png: image size 8x8 differs from 8x4 of .*r_1.png"):
    _load(d)
  for key, why in (("frames", "missing or empty key 'frames'"),
                   ("camera_angle_x", r"frame 1 .*no focal length \('fl_x' or 'camera_angle_x'\)")):
    d2 = _scene(tmp_path / key, drop=key)
    with pytest.raises(UserError, match=rf"transforms_train.json: {why}"):
      _load(d2)
  (d / "transforms_train.json").write_text("{broken")
  with pytest.raises(UserError, match="transforms_train.json: not a readable JSON"):
    _load(d)


def test_poses_only_json_sizes_and_names(tmp_path):
  p = tmp_path / "t.json"
  p.write_text(json.dumps({"camera_angle_x": 0.5, "w": 40, "h": 30, "frames": [
      {"file_path": "./val/r_7", "transform_matrix": np.eye(4).tolist()}]}))
  s = scene.load_cameras(str(p), 1, size=(10, 10))
  assert (s.height, s.width, s.names) == (30, 40, ["r_7"]) and s.images is None
  assert math.isclose(s.camera(0).fx, 20 / math.tan(0.25))
  # a nerfstudio camera path: intrinsics divided by the downscale, names from the file names
  p.write_text(json.dumps({"fl_x": 400, "fl_y": 380, "cx": 390, "cy": 410, "w": 800, "h": 800,
                           "frames": [{"file_path": "images/frame_00012.jpg",
                                       "transform_matrix": np.eye(4).tolist()}]}))
  s = scene.load_cameras(str(p), 4, size=(10, 10))
  cam = s.camera(0)
  assert s.names == ["frame_00012"] and (cam.height, cam.width) == (200, 200)
  assert (cam.fx, cam.fy, cam.cx, cam.cy) == (100.0, 95.0, 97.5, 102.5)


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
    _load(d)


@pytest.mark.parametrize("angle", [0, -0.5, float("nan"), 4.0, "wide", True])
def test_bad_camera_angle(tmp_path, angle):
  d = _scene(tmp_path, meta_extra={"camera_angle_x": angle})
  with pytest.raises(UserError, match=r"transforms_train.json: frame \d+ .*'camera_angle_x' = .* not an angle"):
    _load(d)


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


def _ns_scene(tmp_path, n=10, extra=None, frame_extra=None, ext=".jpg", size=(8, 6)):
  """A nerfstudio-layout scene: one transforms.json, JPEG frames in images/ (frame i is grey i*20)."""
  d = tmp_path / "ns"
  (d / "images").mkdir(parents=True)
  frames = []
  for i in range(n):
    Image.fromarray(np.full((size[1], size[0], 3), i * 20, np.uint8)).save(
        d / "images" / f"frame_{i:05d}.jpg", quality=100)
    pose = np.eye(4)
    pose[:3, 3] = [0.0, -4.0 + 0.1 * i, 0.5]
    frames.append({"file_path": f"images/frame_{i:05d}{ext}", "transform_matrix": pose.tolist(),
                   **(frame_extra or {})})
  meta = {"camera_model": "OPENCV", "fl_x": 10.0, "fl_y": 9.0, "cx": 4.5, "cy": 2.5,
          "w": size[0], "h": size[1], "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "frames": frames,
          **(extra or {})}
  (d / "transforms.json").write_text(json.dumps(meta))
  return d


def test_nerfstudio_layout_holds_out_every_8th_frame(tmp_path):
  d = _ns_scene(tmp_path, n=10)
  sc = scene.open_scene(str(d))
  assert sc.layout == "nerfstudio" and "every 8th frame" in sc.split_rule
  assert sc.eval_split() == "test" and sc.near > 0 and sc.far > sc.near
  train, test = sc.load("train", 1), sc.load("test", 1)
  assert test.names == ["frame_00000", "frame_00008"] and len(train) == 8
  assert "frame_00000" not in train.names
  np.testing.assert_allclose(test.images[1], 160 / 255, atol=2 / 255)   # JPEG, no alpha
  cam = train.camera(0)
  assert (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy) == (8, 6, 10.0, 9.0, 4.5, 2.5)
  # near / far given in the config win over the derived ones
  assert (scene.open_scene(str(d), near=0.5, far=9.0).near, scene.open_scene(str(d), 0.5, 9.0).far) == (0.5, 9.0)


def test_nerfstudio_split_lists_and_a_frame_outside_them_is_never_read(tmp_path):
  d = _ns_scene(tmp_path, n=6, ext="")   # file_path without the extension
  meta = json.loads((d / "transforms.json").read_text())
  meta["train_filenames"] = ["images/frame_00001", "./images/frame_00002", "images/frame_00003"]
  meta["test_filenames"] = ["images/frame_00004"]
  (d / "transforms.json").write_text(json.dumps(meta))
  (d / "images" / "frame_00005.jpg").write_bytes(b"not an image")   # in no list
  sc = scene.open_scene(str(d))
  assert sc.split_rule == "the train_filenames, test_filenames lists"
  assert sc.load("train", 1).names == ["frame_00001", "frame_00002", "frame_00003"]
  assert sc.load("test", 1).names == ["frame_00004"] and sc.eval_split() == "test"
  meta["test_filenames"] = ["images/nope.jpg"]
  (d / "transforms.json").write_text(json.dumps(meta))
  with pytest.raises(UserError, match=r"'test_filenames' entry 'images/nope.jpg' matches no frames"):
    scene.open_scene(str(d))


def test_nerfstudio_per_frame_intrinsics_downscale_and_black_background(tmp_path):
  d = _ns_scene(tmp_path, n=3, size=(8, 8), frame_extra={"fl_x": 12.0, "cx": 3.0})
  cam = scene.open_scene(str(d)).load("train", 2).camera(0)
  assert (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy) == (4, 4, 6.0, 4.5, 1.5, 1.25)
  rgba = np.zeros((8, 8, 4), np.uint8)
  rgba[..., 0], rgba[..., 3] = 255, 128
  Image.fromarray(rgba).save(tmp_path / "half.png")
  np.testing.assert_allclose(scene.load_image(str(tmp_path / "half.png"), white_bkgd=False)[0, 0],
                             [128 / 255, 0, 0], atol=1e-6)


@pytest.mark.parametrize("extra,frame_extra,why", [
    ({"k1": 0.1}, None, r"lens distortion \(k1=0.1\) is not supported: undistort"),
    ({"camera_model": "OPENCV_FISHEYE"}, None, "camera_model 'OPENCV_FISHEYE' is not supported"),
    ({"w": 9}, None, r"frame_00001.jpg: the image is 8x6 but its intrinsics say 9x6"),
    ({"fl_x": -3}, None, r"'fl_x' = -3 is not a positive number"),
    (None, {"file_path": "images/missing.jpg"}, r"missing.jpg: image file not found"),
])
def test_nerfstudio_bad_inputs_name_the_file(tmp_path, extra, frame_extra, why):
  d = _ns_scene(tmp_path, n=3, extra=extra, frame_extra=frame_extra)
  with pytest.raises(UserError, match=why):
    scene.open_scene(str(d)).load("train", 1)
