"""Camera rays on hand-worked cases."""

import jax.numpy as jnp
import numpy as np

from hw4_jax.nerf import rays as rays_lib


def test_rays_hand_case():
  o, d = rays_lib.camera_rays(2, 2, 1.0, np.eye(4))
  np.testing.assert_allclose(o, 0.0)
  # pixel centres at +-0.5 from the principal point; OpenGL: y up, looking down -z
  np.testing.assert_allclose(d[0, 0], [-0.5, 0.5, -1.0])
  np.testing.assert_allclose(d[0, 1], [0.5, 0.5, -1.0])
  np.testing.assert_allclose(d[1, 0], [-0.5, -0.5, -1.0])


def test_rays_rotation_translation_and_device_version():
  c2w = np.eye(4, dtype=np.float32)
  c2w[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]   # camera -z axis maps to world -x
  c2w[:3, 3] = [4.0, 0.5, -1.0]
  o, d = rays_lib.camera_rays(3, 4, 2.0, c2w)
  np.testing.assert_allclose(o[1, 2], [4.0, 0.5, -1.0])
  np.testing.assert_allclose(d[1, 2], [-1.0, 0.0, -0.25], atol=1e-6)   # centre-right pixel
  pix = jnp.arange(12) + 12   # the second image
  od, dd = rays_lib.rays_from_pixels(jnp.stack([jnp.eye(4), jnp.asarray(c2w)]), pix, 3, 4, 2.0)
  np.testing.assert_allclose(np.asarray(dd), d.reshape(-1, 3), atol=1e-6)
  np.testing.assert_allclose(np.asarray(od), o.reshape(-1, 3), atol=1e-6)


def test_look_at_points_camera_at_target():
  m = rays_lib.look_at([0.0, -4.0, 2.0], [0.0, 0.0, 0.0])
  fwd = -m[:3, 2]
  np.testing.assert_allclose(fwd, -np.array([0.0, -4.0, 2.0]) / np.linalg.norm([0, -4, 2]), atol=1e-6)
