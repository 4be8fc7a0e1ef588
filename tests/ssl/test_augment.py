"""On-device augmentation: shapes, ranges, statistics, per-example randomness, the crop box law."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw4_jax.ssl import augment as augment_lib
from tests.helpers import config_module


class augment:  # the module under test, with the batch entry point jitted (eager vmap is slow)
  normalize = staticmethod(augment_lib.normalize)
  random_resized_crop = staticmethod(augment_lib.random_resized_crop)
  gaussian_blur3 = staticmethod(augment_lib.gaussian_blur3)
  _crop_box = staticmethod(augment_lib._crop_box)
  _brightness = staticmethod(augment_lib._brightness)
  _saturation = staticmethod(augment_lib._saturation)
  _hue = staticmethod(augment_lib._hue)

  _cache = {}

  @staticmethod
  def augment_batch(key, images, cfg, normalize_output=True):
    cache_key = (cfg.to_json(), normalize_output)
    if cache_key not in augment._cache:  # compile once per configuration
      augment._cache[cache_key] = jax.jit(
          lambda k, x: augment_lib.augment_batch(k, x, cfg, normalize_output=normalize_output))
    return augment._cache[cache_key](key, images)


@pytest.fixture
def cfg():
  return config_module("common").augment(crop_size=48)


def _images(n=16, size=64, seed=0):
  rng = np.random.default_rng(seed)
  # Smooth random images (low-frequency noise) look more like photos than white noise.
  base = rng.uniform(0, 255, (n, 8, 8, 3))
  return np.asarray(jax.image.resize(base, (n, size, size, 3), "linear")).astype(np.uint8)


def test_shape_dtype_range(cfg):
  out = augment.augment_batch(jax.random.PRNGKey(0), jnp.asarray(_images()), cfg)
  assert out.shape == (16, 48, 48, 3) and out.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(out)))
  lo = (0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
  hi = (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
  flat = np.asarray(out).reshape(-1, 3)
  assert np.all(flat >= lo - 1e-4) and np.all(flat <= hi + 1e-4)
  raw = augment.augment_batch(jax.random.PRNGKey(0), jnp.asarray(_images()), cfg,
                              normalize_output=False)
  np.testing.assert_allclose(np.asarray(augment.normalize(raw)), np.asarray(out), atol=1e-5)


def test_statistics_match_input(cfg):
  """Jitter is symmetric around identity and cropping keeps colours: the mean level is preserved."""
  imgs = _images(64)
  out = augment.augment_batch(jax.random.PRNGKey(1), jnp.asarray(imgs), cfg, normalize_output=False)
  assert abs(float(out.mean()) - imgs.mean() / 255) < 0.05
  assert 0.02 < float(out.std()) < 0.5


def test_per_example_randomness(cfg):
  """One image repeated across the batch gets a different augmentation in every slot."""
  imgs = jnp.asarray(np.repeat(_images(1), 8, axis=0))
  out = np.asarray(augment.augment_batch(jax.random.PRNGKey(2), imgs, cfg))
  flat = out.reshape(8, -1)
  for i in range(8):
    for j in range(i + 1, 8):
      assert np.abs(flat[i] - flat[j]).mean() > 1e-3
  again = np.asarray(augment.augment_batch(jax.random.PRNGKey(2), imgs, cfg))
  np.testing.assert_array_equal(out, again)  # same key, same views
  other = np.asarray(augment.augment_batch(jax.random.PRNGKey(3), imgs, cfg))
  assert np.abs(other - out).mean() > 1e-3


def test_probabilities(cfg):
  """Flip and grayscale fire at their configured rates (binomial, 800 draws)."""
  n = 800
  img = np.zeros((1, 32, 32, 3), np.uint8)
  img[:, :, :16, 0] = 255  # red on the left half, green-ish right: flips and greying are visible
  img[:, :, 16:, 1] = 200
  imgs = jnp.asarray(np.repeat(img, n, axis=0))
  c = config_module("common").augment(crop_size=32)
  c.crop_scale, c.p_jitter, c.p_blur = (1.0, 1.0), 0.0, 0.0
  c.crop_ratio = (1.0, 1.0)
  out = np.asarray(augment.augment_batch(jax.random.PRNGKey(4), imgs, c, normalize_output=False))
  flipped = out[:, 16, 2, :].sum(-1) < out[:, 16, 29, :].sum(-1) - 0.05  # left darker than right
  gray = np.abs(out[..., 0] - out[..., 1]).max(axis=(1, 2)) < 1e-4
  assert abs(flipped.mean() - 0.5) < 0.07
  assert abs(gray.mean() - 0.2) < 0.05


def test_crop_box_law():
  """torchvision's RandomResizedCrop parameters: area fraction in [0.08, 1], aspect in [3/4, 4/3]."""
  keys = jax.random.split(jax.random.PRNGKey(5), 2000)
  y0, x0, h, w = jax.vmap(lambda k: augment._crop_box(k, 100, 100))(keys)
  h, w, y0, x0 = map(np.asarray, (h, w, y0, x0))
  area = h * w / 1e4
  assert area.min() >= 0.07 and area.max() <= 1.0
  ratio = w / h
  assert ratio.min() >= 0.75 * 0.9 and ratio.max() <= 4 / 3 / 0.9
  assert np.all(y0 >= 0) and np.all(y0 + h <= 100) and np.all(x0 >= 0) and np.all(x0 + w <= 100)
  assert abs(np.median(np.log(ratio))) < 0.05  # log-uniform ratio is centred on 1
  assert 0.4 < area.mean() < 0.65  # uniform on [0.08, 1] (a little lower: large draws are rejected)


def test_full_crop_is_resize():
  img = _images(1, 64)[0].astype(np.float32) / 255
  out = augment.random_resized_crop(jax.random.PRNGKey(0), jnp.asarray(img), 32, scale=(1, 1),
                                    ratio=(1, 1))
  ref = jax.image.resize(jnp.asarray(img), (32, 32, 3), "linear", antialias=True)
  np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-4)


def test_blur_and_jitter_ops():
  flat = jnp.full((8, 8, 3), 0.3)
  np.testing.assert_allclose(np.asarray(augment.gaussian_blur3(flat, 1.5)), 0.3, atol=1e-6)
  impulse = jnp.zeros((5, 5, 1)).at[2, 2, 0].set(1.0)
  b = np.asarray(augment.gaussian_blur3(impulse, 1.0))[..., 0]
  e = math.exp(-0.5)
  np.testing.assert_allclose(b[2, 2], (1 / (1 + 2 * e)) ** 2, rtol=1e-5)
  np.testing.assert_allclose(b.sum(), 1.0, rtol=1e-5)
  img = jnp.asarray(_images(1, 16)[0] / 255.0, jnp.float32)
  np.testing.assert_allclose(np.asarray(augment._brightness(img, 1.0)), np.asarray(img), atol=1e-6)
  np.testing.assert_allclose(np.asarray(augment._saturation(img, 1.0)), np.asarray(img), atol=1e-6)
  np.testing.assert_allclose(np.asarray(augment._hue(img, 0.0)), np.asarray(img), atol=1e-5)
  gray = np.asarray(augment._saturation(img, 0.0))
  np.testing.assert_allclose(gray[..., 0], gray[..., 2], atol=1e-6)
