"""2-D convolution whose weight gradient is a sum of per-tap matmuls, for XLA on CPU.

XLA:CPU lowers a convolution's weight gradient to a convolution over the batch dimension, which needs
the activations transposed to channel-major order (and it re-computes the BatchNorm/ReLU chain inside
that transpose), so a ResNet-50 training step spent about a quarter of its time in transposes. Here
the forward pass and the input gradient stay XLA convolutions, and the weight gradient of a k x k
kernel is k*k matmuls `dy^T @ x_tap` that contract over batch and space: only `dy` is transposed, once
per layer (for 1x1 kernels, whichever of `x` and `dy` has fewer channels). Same values as
`lax.conv_general_dilated`'s gradient to float32 rounding (tests/ssl/test_conv.py). `Conv` is a drop-in
for `flax.linen.Conv` as ResNet uses it (no bias, NHWC, same `kernel` parameter), so checkpoints are
interchangeable. On GPU/TPU the backends' own convolution gradients are used instead.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

_DIMS = ("NHWC", "HWIO", "NHWC")


def _conv(x, kernel, stride: int, padding):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding, dimension_numbers=_DIMS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d(x, kernel, stride: int, padding: tuple[tuple[int, int], tuple[int, int]]):
  """NHWC x HWIO convolution with explicit ((top, bottom), (left, right)) padding."""
  return _conv(x, kernel, stride, padding)


def _conv2d_fwd(x, kernel, stride, padding):
  return _conv(x, kernel, stride, padding), (x, kernel)


def _conv2d_bwd(stride, padding, residuals, dy):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda x_: _conv(x_, kernel, stride, padding), x)
  dx, = input_vjp(dy)
  kh, kw, cin, cout = kernel.shape
  ho, wo = dy.shape[1:3]
  if (kh, kw) == (1, 1) and padding == ((0, 0), (0, 0)):
    taps = x[:, ::stride, ::stride][:, :ho, :wo]
    if cin <= cout:
      dk = jnp.einsum("nhwc,nhwd->cd", taps, dy)
    else:
      dk = jnp.einsum("nhwd,nhwc->dc", dy, taps).T
    return dx, dk.reshape(kernel.shape).astype(kernel.dtype)
  xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  span_h, span_w = stride * (ho - 1) + 1, stride * (wo - 1) + 1
  per_tap = [jnp.einsum("nhwd,nhwc->dc", dy, xp[:, i:i + span_h:stride, j:j + span_w:stride])
             for i in range(kh) for j in range(kw)]
  dk = jnp.stack(per_tap).reshape(kh, kw, cout, cin).transpose(0, 1, 3, 2)
  return dx, dk.astype(kernel.dtype)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def _patches(x, kh, kw, stride, padding, out_hw):
  """im2col: [N,Ho,Wo,kh*kw*C], taps in HWIO order (tap-major, then channel)."""
  xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  ho, wo = out_hw
  span_h, span_w = stride * (ho - 1) + 1, stride * (wo - 1) + 1
  return jnp.concatenate([xp[:, i:i + span_h:stride, j:j + span_w:stride]
                          for i in range(kh) for j in range(kw)], axis=-1)


def _col2im(dpatches, x_shape, kh, kw, stride, padding):
  """The adjoint of `_patches`: add each tap's slice back where it came from."""
  n, h, w, c = x_shape
  (pt, pb), (pl, pr) = padding
  hp, wp = h + pt + pb, w + pl + pr
  ho, wo = dpatches.shape[1:3]
  zero = jnp.zeros((), dpatches.dtype)
  total = None
  for t in range(kh * kw):
    i, j = divmod(t, kw)
    tap = dpatches[..., t * c:(t + 1) * c]
    config = ((0, 0, 0), (i, hp - i - (stride * (ho - 1) + 1), stride - 1),
              (j, wp - j - (stride * (wo - 1) + 1), stride - 1), (0, 0, 0))
    placed = jax.lax.pad(tap, zero, config)
    total = placed if total is None else total + placed
  return total[:, pt:pt + h, pl:pl + w]


def _out_hw(x_shape, kh, kw, stride, padding):
  return tuple((x_shape[1 + a] + sum(padding[a]) - k) // stride + 1 for a, k in ((0, kh), (1, kw)))


def _weight_grad(cols, dy):
  """cols^T @ dy over all batch and space positions, as two half-batch matmuls (one per core: a
  single matmul with a long reduction and a small output does not split across threads), with the
  operand that has fewer channels as the transposed one."""
  groups = 2 if cols.shape[0] % 2 == 0 else 1
  cols = cols.reshape(groups, -1, cols.shape[-1])
  dy = dy.reshape(groups, -1, dy.shape[-1])
  if cols.shape[-1] <= dy.shape[-1]:
    return jnp.einsum("gmk,gmd->gkd", cols, dy).sum(0)
  return jnp.einsum("gmd,gmk->gdk", dy, cols).sum(0).T


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d_gemm(x, kernel, stride: int, padding):
  """`conv2d` computed as matmuls: 1x1 kernels directly, larger ones through im2col."""
  kh, kw, cin, cout = kernel.shape
  cols = _patches(x, kh, kw, stride, padding, _out_hw(x.shape, kh, kw, stride, padding))
  return jnp.einsum("nhwk,kd->nhwd", cols, kernel.reshape(kh * kw * cin, cout))


def _gemm_fwd(x, kernel, stride, padding):
  return conv2d_gemm(x, kernel, stride, padding), (x, kernel)


def _gemm_bwd(stride, padding, residuals, dy):
  x, kernel = residuals
  kh, kw, cin, cout = kernel.shape
  cols = _patches(x, kh, kw, stride, padding, dy.shape[1:3])
  k2 = kernel.reshape(kh * kw * cin, cout)
  dk = _weight_grad(cols, dy)
  dcols = jnp.einsum("nhwd,kd->nhwk", dy, k2)
  dx = _col2im(dcols, x.shape, kh, kw, stride, padding)
  return dx, dk.reshape(kernel.shape).astype(kernel.dtype)


conv2d_gemm.defvjp(_gemm_fwd, _gemm_bwd)


def explicit_padding(padding, in_hw: Sequence[int], kernel_size: Sequence[int], stride: int):
  if isinstance(padding, str):
    pads = jax.lax.padtype_to_pads(in_hw, kernel_size, (stride, stride), padding)
  else:
    pads = padding
  return tuple((int(lo), int(hi)) for lo, hi in pads)


class Conv(nn.Module):
  """Bias-free NHWC convolution with `conv2d`'s gradient; parameters as `nn.Conv(use_bias=False)`."""
  features: int
  kernel_size: Sequence[int]
  strides: int | Sequence[int] = 1
  padding: Any = "SAME"
  use_bias: bool = False
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  algorithm: str = "taps"

  @nn.compact
  def __call__(self, x):
    if self.use_bias:
      raise ValueError("hw4_jax.ssl.conv.Conv has no bias (ResNet convs are followed by BatchNorm)")
    stride = self.strides if isinstance(self.strides, int) else self.strides[0]
    kernel_size = tuple(self.kernel_size)
    kernel = self.param("kernel", self.kernel_init, kernel_size + (x.shape[-1], self.features),
                        jnp.float32)
    padding = explicit_padding(self.padding, x.shape[1:3], kernel_size, stride)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    algorithm = self.algorithm
    if algorithm == "auto":  # matmuls pay off once both sides have a few SIMD widths of channels
      algorithm = "gemm" if min(x.shape[-1], self.features) >= 64 else "xla"
    if algorithm == "xla":
      return _conv(x, kernel, stride, padding)
    return (conv2d_gemm if algorithm == "gemm" else conv2d)(x, kernel, stride, padding)


def conv_module(impl: str = "auto"):
  """`impl`: 'xla' (flax's nn.Conv), 'taps' (this module's Conv), 'auto' (taps on CPU only)."""
  if impl not in ("auto", "xla", "taps", "gemm"):
    raise ValueError(f"config.model.conv={impl!r}: expected 'auto', 'xla', 'taps' or 'gemm'")
  if impl == "xla" or jax.default_backend() != "cpu" and impl == "auto":
    return nn.Conv
  return functools.partial(Conv, algorithm=impl)
