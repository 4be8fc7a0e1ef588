"""The ResNet stem's 3x3 / stride-2 / pad-1 max pool, with a hand-written gradient for XLA on CPU.

Autodiff of `lax.reduce_window(max)` becomes a select-and-scatter, which XLA:CPU lowers to a variadic
reduce-window over four int32 index arrays (iotas the size of the input) plus a scatter: about 14 %
of the cpu preset's BYOL step (ResNet-18 width 16 at 96 px) on this project's 2-core CPU. Here the
forward pass is the max of the nine strided window slices and the backward pass sends each output
gradient to the first window position (row-major) that holds the maximum, as select-and-scatter does;
everything is elementwise, so XLA fuses it. Values and gradients equal `flax.linen.max_pool`'s,
ties included (tests/ssl/test_pool.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

_K, _S, _P = 3, 2, 1


def _out_size(n: int) -> int:
  return (n + 2 * _P - _K) // _S + 1


def _window_slices(x):
  """The nine [N, Ho, Wo, C] views x_pad[:, i::2, j::2] (padding with -inf), row-major in (i, j)."""
  n, h, w, c = x.shape
  ho, wo = _out_size(h), _out_size(w)
  xp = jnp.pad(x, ((0, 0), (_P, _P), (_P, _P), (0, 0)), constant_values=-jnp.inf)
  return [lax.slice(xp, (0, i, j, 0), (n, i + _S * (ho - 1) + 1, j + _S * (wo - 1) + 1, c),
                    (1, _S, _S, 1)) for i in range(_K) for j in range(_K)]


@jax.custom_vjp
def max_pool_3x3_s2(x):
  """NHWC max pool, window 3, stride 2, padding 1 (torchvision's ResNet stem)."""
  windows = _window_slices(x)
  y = windows[0]
  for v in windows[1:]:
    y = jnp.maximum(y, v)
  return y


def _fwd(x):
  y = max_pool_3x3_s2(x)
  return y, (x, y)


def _bwd(residuals, dy):
  x, y = residuals
  n, h, w, c = x.shape
  ho, wo = y.shape[1], y.shape[2]
  taken = jnp.zeros(y.shape, bool)
  dx = jnp.zeros(x.shape, dy.dtype)
  for index, v in enumerate(_window_slices(x)):
    i, j = divmod(index, _K)
    hit = (v == y) & ~taken
    taken = taken | hit
    # Spread the [Ho, Wo] grid back to rows i-1, i+1, ... of x (interior padding = stride - 1);
    # negative edge padding drops the -inf border.
    dx = dx + lax.pad(jnp.where(hit, dy, jnp.zeros_like(dy)), jnp.zeros((), dy.dtype),
                      ((0, 0, 0),
                       (i - _P, h + _P - i - _S * (ho - 1) - 1, _S - 1),
                       (j - _P, w + _P - j - _S * (wo - 1) - 1, _S - 1),
                       (0, 0, 0)))
  return (dx,)


max_pool_3x3_s2.defvjp(_fwd, _bwd)
