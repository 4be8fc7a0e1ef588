"""ResNet convolutions as matmuls, for XLA on CPU (about 1.5x the training images/s there).

Profiled on this project's 2-core CPU, XLA:CPU ran a ResNet-50 step's 1x1 convolutions at 10-30
GFLOP/s (the same matmul written as a dot: 100-170), and lowered every weight gradient to a
convolution over the batch that first transposed the activations to channel-major order (a quarter of
the step). `conv2d_gemm` writes a k x k convolution as im2col (k*k shifted slices, concatenated on the
channel axis) times the reshaped HWIO kernel; its hand-written VJP gets the input gradient from one
matmul plus the adjoint of im2col (shifted adds), and the weight gradient from two half-batch matmuls
(one per core) that transpose whichever operand has fewer channels. Values equal
`lax.conv_general_dilated` and its autodiff gradient to float32 rounding (tests/ssl/test_conv.py).

`Conv` is a drop-in for `flax.linen.Conv` as ResNet uses it (no bias, NHWC, the same `kernel`
parameter), so checkpoints do not depend on the implementation. 'auto' uses matmuls on CPU for layers
with >= 64 input and output channels (narrower layers, like the stem, are faster as XLA convolutions)
and leaves GPU/TPU to their own convolution kernels.
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
  """NHWC x HWIO convolution with explicit ((top, bottom), (left, right)) padding, as a matmul."""
  kh, kw, cin, cout = kernel.shape
  cols = _patches(x, kh, kw, stride, padding, _out_hw(x.shape, kh, kw, stride, padding))
  return jnp.einsum("nhwk,kd->nhwd", cols, kernel.reshape(kh * kw * cin, cout))


def _gemm_fwd(x, kernel, stride, padding):
  # Keep x, not its im2col (k*k times larger); the backward pass rebuilds it with cheap slices.
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
  """Bias-free NHWC convolution; `algorithm` 'gemm', 'xla' or 'auto' (see the module docstring)."""
  features: int
  kernel_size: Sequence[int]
  strides: int | Sequence[int] = 1
  padding: Any = "SAME"
  use_bias: bool = False
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  algorithm: str = "auto"

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
    return conv2d_gemm(x, kernel, stride, padding)


def use_cpu_kernels(impl: str = "auto") -> bool:
  """Whether `impl` (config.model.conv) asks for this project's CPU-friendly conv and pool kernels."""
  if impl not in ("auto", "xla", "gemm"):
    raise ValueError(f"config.model.conv={impl!r}: expected 'auto', 'xla' or 'gemm'")
  return impl == "gemm" or impl == "auto" and jax.default_backend() == "cpu"


def conv_module(impl: str = "auto"):
  """`impl` (config.model.conv): 'xla' (flax's nn.Conv), 'gemm', or 'auto' (per layer, CPU only)."""
  return functools.partial(Conv, algorithm=impl) if use_cpu_kernels(impl) else nn.Conv
