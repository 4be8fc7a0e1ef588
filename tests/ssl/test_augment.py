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
  _crop_box = staticmethod(augment_lib._crop_box)

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


# --- torchvision's formulas, transcribed to numpy (torchvision/transforms/_functional_tensor.py,
# float images; HWC here): the reference the on-device ops are checked against, without torch ---

def tv_gray(x):
  return (0.2989 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]


def tv_blend(x1, x2, ratio):
  return np.clip(ratio * x1 + (1.0 - ratio) * x2, 0.0, 1.0)


def tv_brightness(x, f):
  return tv_blend(x, np.zeros_like(x), f)


def tv_contrast(x, f):
  return tv_blend(x, np.mean(tv_gray(x)), f)


def tv_saturation(x, f):
  return tv_blend(x, tv_gray(x), f)


def tv_rgb2hsv(x):
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  maxc, minc = x.max(-1), x.min(-1)
  eqc = maxc == minc
  cr = maxc - minc
  s = cr / np.where(eqc, 1.0, maxc)
  div = np.where(eqc, 1.0, cr)
  rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
  hr = (maxc == r) * (bc - gc)
  hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
  hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
  h = np.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
  return h, s, maxc


def tv_hsv2rgb(h, s, v):
  i = np.floor(h * 6.0)
  f = h * 6.0 - i
  i = i.astype(np.int32) % 6
  p = np.clip(v * (1.0 - s), 0.0, 1.0)
  q = np.clip(v * (1.0 - s * f), 0.0, 1.0)
  t = np.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
  table = np.stack([np.stack(c, -1) for c in ((v, q, p, p, t, v), (t, v, v, q, p, p),
                                               (p, p, t, v, v, q))], -2)   # [..., 3, 6]
  return np.take_along_axis(table, np.broadcast_to(i[..., None, None], table.shape[:-1] + (1,)),
                            -1)[..., 0]


def tv_hue(x, delta):
  h, s, v = tv_rgb2hsv(x)
  return tv_hsv2rgb(np.fmod(h + delta + 1.0, 1.0), s, v)   # (h + delta) % 1 for delta > -1


def tv_blur(x, sigma):
  """GaussianBlur(3, sigma): the 3-tap kernel of linspace(-1, 1, 3), reflect padding."""
  k = np.exp(-0.5 * (np.array([-1.0, 0.0, 1.0]) / sigma) ** 2)
  k /= k.sum()
  p = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="reflect")
  rows = k[0] * p[:-2] + k[1] * p[1:-1] + k[2] * p[2:]
  return k[0] * rows[:, :-2] + k[1] * rows[:, 1:-1] + k[2] * rows[:, 2:]


def _test_image(size=24, seed=0):
  """Smooth colours plus the hue formulas' edge cases: greys, pure and tied primaries, black, white."""
  x = _images(1, size, seed)[0].astype(np.float32) / 255.0
  x[0, :6] = [[0.5, 0.5, 0.5], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1]]
  x[1, :4] = [[0, 0, 0], [1, 1, 1], [0.3, 0.3, 0.7], [0.7, 0.2, 0.7]]
  return x


COLOUR_ATOL = 2e-6   # float32 rounding: measured at most 4.4e-7 per op, 1.3e-6 for four in a row


def test_colour_ops_match_torchvision_formulas():
  x = _test_image()
  ops = {"brightness": (augment_lib._brightness, tv_brightness, (0.2, 1.0, 1.7)),
         "contrast": (augment_lib._contrast, tv_contrast, (0.2, 1.0, 1.7)),
         "saturation": (augment_lib._saturation, tv_saturation, (0.0, 0.2, 1.0, 1.7)),
         "hue": (augment_lib._hue, tv_hue, (-0.5, -0.2, -0.03, 0.0, 0.11, 0.2, 0.5))}
  for name, (ours, ref, factors) in ops.items():
    for f in factors:
      got = np.asarray(jax.jit(ours)(jnp.asarray(x), f))
      np.testing.assert_allclose(got, ref(x.astype(np.float64), f), atol=COLOUR_ATOL, rtol=0,
                                 err_msg=f"{name}({f})")


def test_colour_jitter_applies_the_drawn_ops_in_the_drawn_order():
  x = _test_image(seed=1)
  ref_ops = (tv_brightness, tv_contrast, tv_saturation, tv_hue)
  orders = set()
  jitter = jax.jit(augment_lib.color_jitter)
  for seed in range(24):
    key = jax.random.PRNGKey(seed)
    factors, order = jax.device_get(augment_lib.jitter_params(key))
    want = x.astype(np.float64)
    for op in order:
      want = ref_ops[op](want, float(factors[op]))
    np.testing.assert_allclose(np.asarray(jitter(key, jnp.asarray(x))), want, atol=4 * COLOUR_ATOL,
                               rtol=0, err_msg=f"order {order}, factors {factors}")
    orders.add(tuple(order.tolist()))
  assert len(orders) >= 12   # many of the 24 orders were drawn (hue first, last, in between)


def test_flip_blur_crop_in_the_reference_order():
  """augment_one = crop(blur(flip(x))) with the crop box, sigma and coin flips its key draws."""
  c = config_module("common").augment(crop_size=20)
  c.p_jitter, c.p_gray, c.p_flip, c.p_blur = 0.0, 0.0, 1.0, 1.0
  x = _test_image(size=32, seed=2)
  for seed in range(4):
    key = jax.random.PRNGKey(seed)
    got = np.asarray(jax.jit(lambda k: augment_lib.augment_one(k, jnp.asarray(x * 255), c))(key))
    k = jax.random.split(key, 9)   # augment_one's draws: k[0] the crop box, k[5] the sigma
    y0, x0, h, w = (float(v) for v in augment_lib._crop_box(k[0], 32, 32, c.crop_scale,
                                                            c.crop_ratio))
    sigma = float(jax.random.uniform(k[5], minval=c.blur_sigma[0], maxval=c.blur_sigma[1]))
    blurred = tv_blur(x[:, ::-1].astype(np.float64), sigma)
    s = np.array([20 / h, 20 / w])
    want = jax.image.scale_and_translate(jnp.asarray(blurred, jnp.float32), (20, 20, 3), (0, 1),
                                         jnp.asarray(s), jnp.asarray(-np.array([y0, x0]) * s),
                                         method="linear", antialias=True)
    np.testing.assert_allclose(got, np.clip(np.asarray(want), 0, 1), atol=1e-5)


def test_blur_columns_is_torchvision_blur():
  x = _test_image(size=16, seed=3)
  for sigma in (1.0, 1.7):
    b = augment_lib.blur_columns(jnp.eye(16), sigma)   # the blur's matrix
    np.testing.assert_allclose(np.asarray(augment_lib.apply_matrices(b, jnp.asarray(x), b)),
                               tv_blur(x.astype(np.float64), sigma), atol=1e-6)
