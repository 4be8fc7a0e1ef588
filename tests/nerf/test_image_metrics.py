"""Image metrics against independent references (scikit-image) and hand cases."""

import numpy as np
import pytest
from skimage import data as skdata
from skimage.metrics import structural_similarity

from hw4_jax.nerf import image_metrics as metrics


def _skimage_ssim(a, b):
  return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                               data_range=1.0, channel_axis=-1)


def _noisy(x, scale, seed=0):
  rng = np.random.default_rng(seed)
  return np.clip(x + scale * rng.standard_normal(x.shape), 0, 1).astype(np.float32)


def test_ssim_matches_skimage_on_random_images():
  rng = np.random.default_rng(0)
  a = rng.random((3, 48, 64, 3), dtype=np.float32)
  b = _noisy(a, 0.2, seed=1)
  ours = np.asarray(metrics.ssim(a, b))
  ref = np.array([_skimage_ssim(a[i], b[i]) for i in range(3)])
  np.testing.assert_allclose(ours, ref, atol=1e-3)


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_ssim_matches_skimage_on_natural_images(name):
  img = getattr(skdata, name)().astype(np.float32)[:256, :256] / 255.0
  for other in (_noisy(img, 0.05), np.clip(img * 0.8 + 0.1, 0, 1), img[:, ::-1]):
    np.testing.assert_allclose(float(metrics.ssim(img, other)[0]), _skimage_ssim(img, other), atol=1e-3)


def test_ssim_on_real_lego_view(shared_data):
  from PIL import Image
  rgba = np.asarray(Image.open(shared_data / "nerf_synthetic/lego/val/r_0.png"), np.float32) / 255.0
  img = rgba[..., :3] * rgba[..., 3:] + 1.0 - rgba[..., 3:]
  img = img[::4, ::4]
  other = _noisy(img, 0.03)
  np.testing.assert_allclose(float(metrics.ssim(img, other)[0]), _skimage_ssim(img, other), atol=1e-3)


def test_ssim_identity_is_one():
  img = np.random.default_rng(2).random((1, 32, 32, 3), dtype=np.float32)
  np.testing.assert_allclose(metrics.ssim(img, img), [1.0], atol=1e-6)


def test_psnr_hand_case():
  a = np.zeros((1, 4, 4, 3), np.float32)
  b = np.full((1, 4, 4, 3), 0.1, np.float32)  # mse = 0.01 -> 20 dB
  np.testing.assert_allclose(metrics.psnr(a, b), [20.0], rtol=1e-6)
  b[..., 0] = 0.0  # mse = 0.02 / 3 -> 10 log10(150)
  np.testing.assert_allclose(metrics.psnr(a, b), [10 * np.log10(150.0)], rtol=1e-6)


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_zero_symmetric_and_monotone_in_noise(net):
  img = skdata.astronaut().astype(np.float32)[::4, ::4][None] / 255.0  # 128x128
  noisy = [_noisy(img, s, seed=3) for s in (0.02, 0.08, 0.2)]
  assert abs(float(metrics.lpips(img, img, net=net)[0])) < 1e-6
  d_ab = metrics.lpips(img, noisy[1], net=net)
  d_ba = metrics.lpips(noisy[1], img, net=net)
  np.testing.assert_allclose(d_ab, d_ba, rtol=1e-5, atol=1e-7)
  ds = [float(metrics.lpips(img, n, net=net)[0]) for n in noisy]
  assert 0 < ds[0] < ds[1] < ds[2], ds


def test_lpips_batches_with_padding_like_single_calls():
  rng = np.random.default_rng(4)
  a = rng.random((5, 32, 32, 3), dtype=np.float32)
  b = _noisy(a, 0.1)
  batched = metrics.lpips(a, b, batch_size=2)
  single = np.concatenate([metrics.lpips(a[i:i + 1], b[i:i + 1], batch_size=1) for i in range(5)])
  np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-6)
