"""On-device BYOL augmentation, independent per example, run inside the jitted train step.

The reference report's torchvision pipeline, re-expressed with dm-pix and `jax.image` so the host only
decodes JPEGs:
RandomResizedCrop(size, scale 0.08-1, ratio 3/4-4/3) -> ColorJitter(0.8, 0.8, 0.8, 0.2) with p=0.3 (the
four ops in a random order, as torchvision does) -> RandomGrayscale p=0.2 -> horizontal flip p=0.5 ->
GaussianBlur 3x3, sigma in [1, 2], p=0.2 -> Normalize(ImageNet mean/std). Each example draws its own
parameters from its own key (`vmap` over `split(key, B)`), so the result does not depend on how the
batch is split across devices.
"""

from __future__ import annotations

import math

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)   # numpy: no device work at import
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _crop_box(key, height: int, width: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), tries=10):
  """torchvision's RandomResizedCrop.get_params, vectorised: first valid of 10 draws, else centre."""
  k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
  area = height * width * jax.random.uniform(k_area, (tries,), minval=scale[0], maxval=scale[1])
  log_r = jax.random.uniform(k_ratio, (tries,), minval=math.log(ratio[0]), maxval=math.log(ratio[1]))
  aspect = jnp.exp(log_r)
  w = jnp.round(jnp.sqrt(area * aspect))
  h = jnp.round(jnp.sqrt(area / aspect))
  ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
  first = jnp.argmax(ok)
  # Fallback (no valid draw): the largest centred crop with the ratio clamped into range.
  in_ratio = width / height
  if in_ratio < ratio[0]:
    fw, fh = width, round(width / ratio[0])
  elif in_ratio > ratio[1]:
    fw, fh = round(height * ratio[1]), height
  else:
    fw, fh = width, height
  any_ok = jnp.any(ok)
  h = jnp.where(any_ok, h[first], fh)
  w = jnp.where(any_ok, w[first], fw)
  y0 = jnp.where(any_ok, jnp.floor(jax.random.uniform(k_y) * (height - h + 1)), (height - fh) // 2)
  x0 = jnp.where(any_ok, jnp.floor(jax.random.uniform(k_x) * (width - w + 1)), (width - fw) // 2)
  return y0, x0, h, w


def random_resized_crop(key, image, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
  """Crop a random box and resize it to size x size (bilinear, antialiased) with one matmul pair."""
  height, width = image.shape[:2]
  y0, x0, h, w = _crop_box(key, height, width, scale, ratio)
  s = jnp.stack([size / h, size / w])
  t = -jnp.stack([y0, x0]) * s
  return jax.image.scale_and_translate(image, (size, size, image.shape[2]), (0, 1), s, t,
                                       method="linear", antialias=True)


def _gray(image):
  return pix.rgb_to_grayscale(image, keep_dims=True)


def _brightness(image, f):
  return jnp.clip(image * f, 0.0, 1.0)


def _contrast(image, f):  # torchvision: blend with the mean grey level of the image
  mean = jnp.mean(_gray(image))
  return jnp.clip(f * image + (1 - f) * mean, 0.0, 1.0)


def _saturation(image, f):  # torchvision: blend with the greyscale image (cheaper than an HSV trip)
  return jnp.clip(f * image + (1 - f) * _gray(image), 0.0, 1.0)


def _hue(image, delta):
  return jnp.clip(pix.adjust_hue(image, delta), 0.0, 1.0)


def color_jitter(key, image, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2):
  """torchvision ColorJitter: factors uniform in [1-x, 1+x] (hue shift in [-h, h]), random op order."""
  kb, kc, ks, kh, kp = jax.random.split(key, 5)
  fb = jax.random.uniform(kb, minval=max(0.0, 1 - brightness), maxval=1 + brightness)
  fc = jax.random.uniform(kc, minval=max(0.0, 1 - contrast), maxval=1 + contrast)
  fs = jax.random.uniform(ks, minval=max(0.0, 1 - saturation), maxval=1 + saturation)
  fh = jax.random.uniform(kh, minval=-hue, maxval=hue)
  ops = (lambda x: _brightness(x, fb), lambda x: _contrast(x, fc),
         lambda x: _saturation(x, fs), lambda x: _hue(x, fh))
  for op_index in jax.random.permutation(kp, 4):
    image = jax.lax.switch(op_index, ops, image)
  return image


def gaussian_blur3(image, sigma):
  """3x3 Gaussian blur, separable, reflect padding (torchvision's GaussianBlur border handling)."""
  e = jnp.exp(-1.0 / (2.0 * sigma ** 2))
  w = jnp.stack([e, 1.0, e]) / (1.0 + 2.0 * e)
  p = jnp.pad(image, ((1, 1), (1, 1), (0, 0)), mode="reflect")
  rows = w[0] * p[:-2] + w[1] * p[1:-1] + w[2] * p[2:]
  return w[0] * rows[:, :-2] + w[1] * rows[:, 1:-1] + w[2] * rows[:, 2:]


def augment_one(key, image, cfg):
  """One example: uint8 or [0,1] float HxWx3 -> augmented [0,1] float size x size x 3 (not normalised)."""
  image = image.astype(jnp.float32)
  if cfg.get("uint8_input", True):
    image = image / 255.0
  k = jax.random.split(key, 9)
  x = random_resized_crop(k[0], image, cfg.crop_size, tuple(cfg.crop_scale), tuple(cfg.crop_ratio))
  x = jnp.clip(x, 0.0, 1.0)
  # Under vmap a random branch computes both sides, so an op with probability 0 is skipped at trace
  # time (same keys, same result; the cpu preset turns colour jitter off and this saves its cost).
  if cfg.p_jitter > 0:
    jittered = color_jitter(k[1], x, cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)
    x = jnp.where(jax.random.bernoulli(k[2], cfg.p_jitter), jittered, x)
  if cfg.p_gray > 0:
    x = jnp.where(jax.random.bernoulli(k[3], cfg.p_gray), jnp.broadcast_to(_gray(x), x.shape), x)
  if cfg.p_flip > 0:
    x = jnp.where(jax.random.bernoulli(k[4], cfg.p_flip), pix.flip_left_right(x), x)
  if cfg.p_blur > 0:
    sigma = jax.random.uniform(k[5], minval=cfg.blur_sigma[0], maxval=cfg.blur_sigma[1])
    x = jnp.where(jax.random.bernoulli(k[6], cfg.p_blur), gaussian_blur3(x, sigma), x)
  return x


def augment_batch(key, images, cfg, *, normalize_output: bool = True):
  """A batch of independent augmentations: [B,H,W,3] uint8 -> [B,S,S,3] float32 (normalised)."""
  out = jax.vmap(lambda k, im: augment_one(k, im, cfg))(jax.random.split(key, images.shape[0]),
                                                        images)
  return normalize(out) if normalize_output else out


def normalize(images01):
  return (images01 - IMAGENET_MEAN) / IMAGENET_STD


def denormalize(images):
  return jnp.clip(images * IMAGENET_STD + IMAGENET_MEAN, 0.0, 1.0)


def eval_preprocess(images, size: int):
  """Evaluation input: uint8 [B,H,W,3] -> resized to size, [0,1], normalised (no randomness)."""
  x = images.astype(jnp.float32) / 255.0
  if x.shape[1:3] != (size, size):
    x = jax.image.resize(x, (x.shape[0], size, size, 3), "linear", antialias=True)
  return normalize(x)


def pair_grid(view1, view2, columns: int = 8):
  """A [0,1] HxWx3 grid of augmented pairs (two rows per pair row: view 1 above view 2)."""
  import numpy as np
  v1, v2 = np.asarray(view1), np.asarray(view2)
  n = min(len(v1), 2 * columns) // columns * columns or len(v1)
  cols = min(columns, n)
  s, pad = v1.shape[1], 2
  rows = n // cols
  grid = np.ones((rows * 2 * (s + pad) + pad, cols * (s + pad) + pad, 3), np.float32)
  for i in range(rows * cols):
    r, c = divmod(i, cols)
    for j, v in enumerate((v1, v2)):
      y = pad + (2 * r + j) * (s + pad)
      x = pad + c * (s + pad)
      grid[y:y + s, x:x + s] = v[i]
  return grid
