"""viser's camera <-> the project's camera, against hand-worked cases (view_camera.py)."""

import math

import numpy as np
import pytest

pytest.importorskip("viser", reason="the browser viewer's extra (pip install -e '.[viewer]')")

from hw4_jax.nerf import rays as rays_lib, view_camera   # noqa: E402


def test_identity_pose_looks_down_plus_z():
  # viser (OpenCV): identity = the camera looks along world +z with its image's y pointing down
  # (world -y). The OpenGL camera-to-world matrix of that camera: right +x, up -y, back -z.
  c2w = view_camera.c2w_from_viser((1.0, 0.0, 0.0, 0.0), (1.0, 2.0, 3.0))
  np.testing.assert_allclose(c2w, [[1, 0, 0, 1], [0, -1, 0, 2], [0, 0, -1, 3], [0, 0, 0, 1]],
                             atol=1e-12)


def test_quarter_turn_about_x():
  # wxyz = (cos 45deg, sin 45deg, 0, 0): +90deg about x maps camera +z (forward) to world -y and
  # camera +y (down) to world +z: the OpenGL camera's forward (-z) is world -y, its up (+y) world
  # -z, its right (+x) world +x.
  h = math.sqrt(0.5)
  c2w = view_camera.c2w_from_viser((h, h, 0.0, 0.0), (0.0, 0.0, 0.0))
  np.testing.assert_allclose(-c2w[:3, 2], [0, -1, 0], atol=1e-12)   # forward
  np.testing.assert_allclose(c2w[:3, 1], [0, 0, -1], atol=1e-12)    # up
  np.testing.assert_allclose(c2w[:3, 0], [1, 0, 0], atol=1e-12)     # right


def test_round_trip_and_look_at():
  c2w = rays_lib.look_at((4.0, -1.0, 2.0), (0.0, 0.5, 0.0), up=(0.0, 0.0, 1.0)).astype(np.float64)
  wxyz, pos = view_camera.viser_from_c2w(c2w)
  np.testing.assert_allclose(view_camera.c2w_from_viser(wxyz, pos), c2w, atol=1e-6)
  # the centre pixel's ray of the converted camera points at the look-at target
  cam = view_camera.camera_from_fov(math.radians(50), 31, 41)
  o, d = rays_lib.camera_rays(cam, view_camera.c2w_from_viser(wxyz, pos))
  toward = np.array([0.0, 0.5, 0.0]) - o[15, 20]
  np.testing.assert_allclose(d[15, 20] / np.linalg.norm(d[15, 20]),
                             toward / np.linalg.norm(toward), atol=1e-5)


def test_intrinsics_from_vertical_fov():
  # a 90 degree vertical field of view: the top edge is one focal length above the centre
  cam = view_camera.camera_from_fov(math.pi / 2, 100, 160)
  assert (cam.height, cam.width, cam.cx, cam.cy) == (100, 160, 80.0, 50.0)
  assert (cam.fx, cam.fy) == (pytest.approx(50.0), pytest.approx(50.0))
  assert view_camera.fov_of(cam) == pytest.approx(math.pi / 2)
  assert view_camera.image_size(4 / 3, 200) == (150, 200)
  assert view_camera.image_size(0.5, 200) == (200, 100)
  frame = view_camera.transforms_frame(cam, np.eye(4))
  assert (frame["w"], frame["h"], frame["cx"], frame["cy"]) == (160, 100, 80.0, 50.0)
