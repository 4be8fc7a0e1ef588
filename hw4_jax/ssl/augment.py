"""On-device BYOL augmentation, independent per example, run inside the jitted train step.

The reference report's torchvision pipeline (byol-pytorch's default augmentation), in its order,
re-expressed with `jax.image` so the host only decodes JPEGs:
ColorJitter(0.8, 0.8, 0.8, 0.2) with p=0.3 (the four ops in a random order, as torchvision does) ->
RandomGrayscale p=0.2 -> horizontal flip p=0.5 -> GaussianBlur 3x3, sigma in [1, 2], p=0.2 ->
RandomResizedCrop(size, scale 0.08-1, ratio 3/4-4/3) -> Normalize(ImageNet mean/std). So the blur acts
on the whole image before the crop is resized, as in the reference. Each example draws its own
parameters from its own key (`vmap` over `split(key, B)`; torchvision draws one set per batch tensor),
so the result does not depend on how the batch is split across devices. The colour ops follow
torchvision's formulas (tests/ssl/test_augment.py checks them against a transcription of them).
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


def _resize_matrix(n: int, start, length, size: int):
  """size x n: the weights of jax.image.scale_and_translate's antialiased bilinear resize of
  [start, start + length) of an axis of n pixels to `size` pixels (its `compute_weight_mat` for the
  triangle kernel; jax.image has no public function for the matrix, and applying the resize to an
  identity matrix would cost a matmul per example)."""
  inv_scale = length / size
  sample = (jnp.arange(size, dtype=jnp.float32) + 0.5) * inv_scale + start - 0.5
  kernel_scale = jnp.maximum(inv_scale, 1.0)   # antialias: widen the kernel when shrinking
  w = jnp.maximum(0.0, 1.0 - jnp.abs(sample[:, None] - jnp.arange(n, dtype=jnp.float32)) /
                  kernel_scale)
  total = jnp.sum(w, axis=1, keepdims=True)
  w = jnp.where(jnp.abs(total) > 1000.0 * float(np.finfo(np.float32).eps),
                w / jnp.where(total != 0, total, 1.0), 0.0)
  return jnp.where(((sample >= -0.5) & (sample <= n - 0.5))[:, None], w, 0.0)


def blur_columns(m, sigma):
  """m @ B for torchvision's GaussianBlur with a 3-tap kernel along one axis of n = m.shape[1]
  pixels, B the n x n blur with reflect borders (out[0] = centre x0 + 2 side x1): B is
  tridiagonal, so the product is three shifted columns, not a matmul."""
  e = jnp.exp(-1.0 / (2.0 * sigma ** 2))
  side, centre = e / (1.0 + 2.0 * e), 1.0 / (1.0 + 2.0 * e)
  zero = jnp.zeros_like(m[:, :1])
  from_left = jnp.concatenate([zero, m[:, :-1]], axis=1)    # column j gets m[:, j-1] B[j-1, j]
  from_right = jnp.concatenate([m[:, 1:], zero], axis=1)    # and m[:, j+1] B[j+1, j]
  out = centre * m + side * (from_left + from_right)
  n = m.shape[1]
  return out.at[:, 1].add(side * m[:, 0]).at[:, n - 2].add(side * m[:, n - 1])   # the reflections


def crop_matrices(key, height: int, width: int, size: int, scale=(0.08, 1.0),
                  ratio=(3 / 4, 4 / 3)):
  """(rows: size x height, cols: size x width) of a random resized crop: out = rows @ x @ cols.T."""
  y0, x0, h, w = _crop_box(key, height, width, scale, ratio)
  return _resize_matrix(height, y0, h, size), _resize_matrix(width, x0, w, size)


def apply_matrices(rows, image, cols):
  """rows @ image @ cols.T on each channel of an H x W x C image."""
  return jnp.einsum("sh,hwc,tw->stc", rows, image, cols, optimize=[(0, 1), (0, 1)])


def random_resized_crop(key, image, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
  """Crop a random box and resize it to size x size (bilinear, antialiased) with one matmul pair."""
  rows, cols = crop_matrices(key, image.shape[0], image.shape[1], size, scale, ratio)
  return apply_matrices(rows, image, cols)


GRAY_WEIGHTS = np.array([0.2989, 0.587, 0.114], np.float32)   # torchvision's rgb_to_grayscale


def _gray(image):
  """H x W x 1 luma (a weighted sum of slices: XLA:CPU's reduction over a 3-wide axis is ~30x slower)."""
  w = GRAY_WEIGHTS
  return (w[0] * image[..., 0] + w[1] * image[..., 1] + w[2] * image[..., 2])[..., None]


def _blend(image, a, b_gray, b_mean):
  """clip(a x + b_gray gray(x) + b_mean mean(gray(x))): torchvision's brightness (blend with black),
  contrast (with the mean grey level) and saturation (with the greyscale image) in one form."""
  gray = _gray(image)
  return jnp.clip(a * image + b_gray * gray + b_mean * jnp.mean(gray), 0.0, 1.0)


def _brightness(image, f):
  return _blend(image, f, 0.0, 0.0)


def _contrast(image, f):
  return _blend(image, f, 0.0, 1.0 - f)


def _saturation(image, f):
  return _blend(image, f, 1.0 - f, 0.0)


def _hue(image, delta):
  """torchvision's adjust_hue (RGB -> HSV, h <- (h + delta) mod 1, HSV -> RGB), fused.

  The HSV -> RGB step is the branch-free form channel = v - c * clip(min(n, 4 - n), 0, 1) with
  n = (k + 6h) mod 6, k = 5, 3, 1 for R, G, B and chroma c = v s = max - min: equal to torchvision's
  six-sector table (tests/ssl/test_augment.py checks it against the formulas, to float32 rounding),
  without materialising h, s, v as separate images."""
  r, g, b = image[..., 0], image[..., 1], image[..., 2]
  # The sector from comparisons, not `max == r`: XLA may recompute r, g, b inside the fusion with
  # other roundings than the max it compares them to, and an equality test then picks no sector.
  r_max = (r >= g) & (r >= b)
  g_max = ~r_max & (g >= b)
  v = jnp.where(r_max, r, jnp.where(g_max, g, b))
  c = v - jnp.minimum(jnp.minimum(r, g), b)
  inv = 1.0 / jnp.where(c > 0, c, 1.0)
  h6 = jnp.where(r_max, (g - b) * inv, jnp.where(g_max, 2.0 + (b - r) * inv, 4.0 + (r - g) * inv))
  h6 = h6 + 6.0 * delta                 # in [-4, 8): |delta| <= 0.5
  h6 = h6 - 6.0 * jnp.floor(h6 / 6.0)   # mod 6 (jnp.mod is a scalar libm call on XLA:CPU: 5x slower)
  out = []
  for k in (5.0, 3.0, 1.0):
    n = k + h6
    n = jnp.where(n >= 6.0, n - 6.0, n)
    out.append(v - c * jnp.clip(jnp.minimum(n, 4.0 - n), 0.0, 1.0))
  return jnp.stack(out, axis=-1)


def jitter_params(key, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2):
  """((brightness, contrast, saturation, hue) factors, op order) as ColorJitter.get_params draws them;
  in `order`, 0 = brightness, 1 = contrast, 2 = saturation, 3 = hue."""
  kb, kc, ks, kh, kp = jax.random.split(key, 5)
  fb = jax.random.uniform(kb, minval=max(0.0, 1 - brightness), maxval=1 + brightness)
  fc = jax.random.uniform(kc, minval=max(0.0, 1 - contrast), maxval=1 + contrast)
  fs = jax.random.uniform(ks, minval=max(0.0, 1 - saturation), maxval=1 + saturation)
  fh = jax.random.uniform(kh, minval=-hue, maxval=hue)
  return (fb, fc, fs, fh), jax.random.permutation(kp, 4)


def color_jitter(key, image, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2):
  """torchvision ColorJitter: factors uniform in [1-x, 1+x] (hue shift in [-h, h]), the four ops in a
  random order.

  Written for `vmap`, where a per-example `lax.switch` runs every branch: brightness, contrast and
  saturation are one blend whose coefficients depend on the op drawn (`_blend`), so the order costs
  three blends before the hue shift and three after it (identity where that slot is empty) and the
  hue shift, the only costly op, runs once instead of once per position."""
  (fb, fc, fs, fh), order = jitter_params(key, brightness, contrast, saturation, hue)
  coef = jnp.stack([jnp.stack([fb, 0.0, 0.0]), jnp.stack([fc, 0.0, 1.0 - fc]),
                    jnp.stack([fs, 1.0 - fs, 0.0]), jnp.array([1.0, 0.0, 0.0])])  # identity last
  hue_at = jnp.argmax(order == 3)
  for i in range(3):   # the ops drawn before the hue shift
    a, bg, bm = coef[jnp.where(i < hue_at, order[i], 3)]
    image = _blend(image, a, bg, bm)
  image = _hue(image, fh)
  for i in range(1, 4):   # and after it
    a, bg, bm = coef[jnp.where(i > hue_at, order[i], 3)]
    image = _blend(image, a, bg, bm)
  return image


def augment_one(key, image, cfg):
  """One example: uint8 or [0,1] float HxWx3 -> augmented [0,1] float size x size x 3 (not normalised),
  in the reference's order: jitter, greyscale, flip and blur on the whole image, then the crop."""
  x = image.astype(jnp.float32)
  if cfg.get("uint8_input", True):
    x = x / 255.0
  k = jax.random.split(key, 9)
  # Under vmap a random branch computes both sides, so an op with probability 0 is skipped at trace
  # time (same keys, same result; the cpu preset turns colour jitter off and this saves its cost).
  if cfg.p_jitter > 0:
    jittered = color_jitter(k[1], x, cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)
    x = jnp.where(jax.random.bernoulli(k[2], cfg.p_jitter), jittered, x)
  if cfg.p_gray > 0:
    x = jnp.where(jax.random.bernoulli(k[3], cfg.p_gray), jnp.broadcast_to(_gray(x), x.shape), x)
  # Flip, blur and crop are linear maps along the rows and the columns: one matrix pair applies
  # them in the reference's order (flip, blur, crop) with two matmuls, and gives XLA no elementwise
  # chain to re-run inside the blur's shifted reads (which cost 3x the rest of the augmentation).
  height, width = x.shape[:2]
  rows, cols = crop_matrices(k[0], height, width, cfg.crop_size, tuple(cfg.crop_scale),
                             tuple(cfg.crop_ratio))
  if cfg.p_blur > 0:
    sigma = jax.random.uniform(k[5], minval=cfg.blur_sigma[0], maxval=cfg.blur_sigma[1])
    blur = jax.random.bernoulli(k[6], cfg.p_blur)
    rows = jnp.where(blur, blur_columns(rows, sigma), rows)
    cols = jnp.where(blur, blur_columns(cols, sigma), cols)
  if cfg.p_flip > 0:   # the crop of the mirrored image: read the columns from the right
    cols = jnp.where(jax.random.bernoulli(k[4], cfg.p_flip), cols[:, ::-1], cols)
  x = apply_matrices(rows, x, cols)
  return jnp.clip(x, 0.0, 1.0)


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
