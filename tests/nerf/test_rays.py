"""Camera rays, orbits and the derived near / far on hand-worked cases."""

import jax.numpy as jnp
import numpy as np

from hw4_jax.nerf import cameras
from hw4_jax.nerf import rays as rays_lib
from hw4_jax.nerf.cameras import Camera


def _centred(h, w, f):
  return Camera(h, w, f, f, w / 2, h / 2)


def test_rays_hand_case():
  o, d = rays_lib.camera_rays(_centred(2, 2, 1.0), np.eye(4))
  np.testing.assert_allclose(o, 0.0)
  # pixel centres at +-0.5 from the principal point; OpenGL: y up, looking down -z
  np.testing.assert_allclose(d[0, 0], [-0.5, 0.5, -1.0])
  np.testing.assert_allclose(d[0, 1], [0.5, 0.5, -1.0])
  np.testing.assert_allclose(d[1, 0], [-0.5, -0.5, -1.0])


def test_rays_with_two_focal_lengths_and_an_off_centre_principal_point():
  cam = Camera(height=3, width=4, fx=2.0, fy=4.0, cx=1.0, cy=2.5)
  _, d = rays_lib.camera_rays(cam, np.eye(4))
  # pixel (col 3, row 0): centre (3.5, 0.5) -> ((3.5 - 1) / 2, -(0.5 - 2.5) / 4, -1)
  np.testing.assert_allclose(d[0, 3], [1.25, 0.5, -1.0])
  # pixel (col 0, row 2): centre (0.5, 2.5) -> (-0.25, 0, -1): cy sits on this row's centre
  np.testing.assert_allclose(d[2, 0], [-0.25, 0.0, -1.0])
  half = cam.scaled(2)   # 2x2 area averaging: every length halves
  assert (half.height, half.width, half.fx, half.fy, half.cx, half.cy) == (1, 2, 1.0, 2.0, 0.5, 1.25)


def test_rays_rotation_translation_and_device_version():
  c2w = np.eye(4, dtype=np.float32)
  c2w[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]   # camera -z axis maps to world -x
  c2w[:3, 3] = [4.0, 0.5, -1.0]
  cam = Camera(3, 4, 2.0, 3.0, 1.5, 1.0)
  o, d = rays_lib.camera_rays(cam, c2w)
  np.testing.assert_allclose(o[1, 2], [4.0, 0.5, -1.0])
  np.testing.assert_allclose(d[1, 2], [-1.0, -1 / 6, -0.5], atol=1e-6)   # pixel centre (2.5, 1.5)
  pix = jnp.arange(12) + 12   # the second image
  k = jnp.stack([jnp.asarray([1.0, 1.0, 2.0, 1.5]), jnp.asarray(cam.intrinsics())])
  od, dd = rays_lib.rays_from_pixels(jnp.stack([jnp.eye(4), jnp.asarray(c2w)]), k, pix, 3, 4)
  np.testing.assert_allclose(np.asarray(dd), d.reshape(-1, 3), atol=1e-6)
  np.testing.assert_allclose(np.asarray(od), o.reshape(-1, 3), atol=1e-6)


def test_look_at_points_camera_at_target():
  m = rays_lib.look_at([0.0, -4.0, 2.0], [0.0, 0.0, 0.0])
  fwd = -m[:3, 2]
  np.testing.assert_allclose(fwd, -np.array([0.0, -4.0, 2.0]) / np.linalg.norm([0, -4, 2]), atol=1e-6)


def test_orbit_follows_the_up_axis_and_centre():
  up, centre = np.array([0.0, 1.0, 0.0]), np.array([1.0, 2.0, 3.0])
  poses = rays_lib.orbit_poses(8, 2.0, 30.0, centre, up)
  eyes = poses[:, :3, 3] - centre
  np.testing.assert_allclose(np.linalg.norm(eyes, axis=-1), 2.0, atol=1e-5)
  np.testing.assert_allclose(eyes @ up, 2.0 * np.sin(np.deg2rad(30.0)), atol=1e-5)   # elevation
  fwd = -poses[:, :3, 2]
  np.testing.assert_allclose(fwd, -eyes / 2.0, atol=1e-5)                           # looks at it
  assert np.all(poses[:, :3, 1] @ up > 0.5)                                          # upright


def test_derived_near_far_on_a_ring_of_cameras():
  eyes = [4.0 * np.array([np.cos(a), np.sin(a), 0.3]) / np.linalg.norm([1, 0, 0.3])
          for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]
  poses = np.stack([rays_lib.look_at(e, [0.0, 0.0, 0.5]) for e in eyes])
  np.testing.assert_allclose(cameras.look_point(poses), [0.0, 0.0, 0.5], atol=1e-5)
  d = np.linalg.norm(np.stack(eyes) - [0.0, 0.0, 0.5], axis=-1)
  near, far = cameras.derived_near_far(poses)
  np.testing.assert_allclose([near, far], [d.min() - d.mean() / 2, d.max() + d.mean() / 2], rtol=1e-5)
