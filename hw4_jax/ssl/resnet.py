"""ResNet-18/50 in Flax linen, laid out like torchvision (stride on the 3x3 conv of the bottleneck).

`ResNet(num_classes=None)` returns the global-average-pooled features (512 for ResNet-18, 2048 for
ResNet-50), which is what BYOL and the classifier put their heads on; `num_classes=1000` adds the fc
layer and gives torchvision's 25,557,032 parameters for ResNet-50. `dtype=jnp.bfloat16` computes in
bf16 while parameters, BatchNorm statistics (flax reduces them in float32) and the pooled features stay
float32: the mixed precision of the reference's fp16 AMP, in the format that needs no loss scaling.
`config.model.dtype='auto'` is bfloat16 on GPU/TPU and float32 on CPU (`compute_dtype`). `conv` is the convolution module
(`hw4_jax.ssl.conv.conv_module`: on CPU, wide layers run as matmuls; the parameters are the same), and
`pool` the stem's max pool (on CPU, `hw4_jax.ssl.pool`'s, whose gradient XLA fuses).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from hw4_jax.core.errors import UserError
from hw4_jax.ssl import conv as conv_lib
from hw4_jax.ssl import pool as pool_lib


class BasicBlock(nn.Module):
  filters: int
  strides: int = 1
  conv: Any = nn.Conv
  norm: Any = nn.BatchNorm

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.conv(self.filters, (3, 3), self.strides, padding=((1, 1), (1, 1)))(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters, (3, 3), padding=((1, 1), (1, 1)))(y)
    y = self.norm()(y)
    if residual.shape != y.shape:
      residual = self.conv(self.filters, (1, 1), self.strides, name="downsample_conv")(residual)
      residual = self.norm(name="downsample_norm")(residual)
    return nn.relu(residual + y)


class Bottleneck(nn.Module):
  filters: int
  strides: int = 1
  conv: Any = nn.Conv
  norm: Any = nn.BatchNorm

  @nn.compact
  def __call__(self, x):
    residual = x
    y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
    y = self.conv(self.filters, (3, 3), self.strides, padding=((1, 1), (1, 1)))(y)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters * 4, (1, 1))(y)
    y = self.norm()(y)
    if residual.shape != y.shape:
      residual = self.conv(self.filters * 4, (1, 1), self.strides, name="downsample_conv")(residual)
      residual = self.norm(name="downsample_norm")(residual)
    return nn.relu(residual + y)


class ResNet(nn.Module):
  """A ResNet; `train` selects batch statistics (and updates `batch_stats`) vs running averages."""
  stage_sizes: Sequence[int]
  block: Any
  width: int = 64
  num_classes: int | None = None
  dtype: Any = jnp.float32
  conv: Any = nn.Conv
  pool: Any = None  # None: flax's max_pool

  @nn.compact
  def __call__(self, x, train: bool = True):
    conv = functools.partial(self.conv, use_bias=False, dtype=self.dtype,
                             kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"))
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, dtype=self.dtype)
    x = x.astype(self.dtype)
    x = conv(self.width, (7, 7), (2, 2), padding=((3, 3), (3, 3)), name="conv_init")(x)
    x = nn.relu(norm(name="bn_init")(x))
    if self.pool is None:
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    else:
      x = self.pool(x)
    for i, blocks in enumerate(self.stage_sizes):
      for j in range(blocks):
        strides = (2, 2) if i > 0 and j == 0 else (1, 1)
        x = self.block(self.width * 2 ** i, strides, conv=conv, norm=norm)(x)
    x = jnp.mean(x, axis=(1, 2)).astype(jnp.float32)
    if self.num_classes:
      x = nn.Dense(self.num_classes, name="fc")(x)
    return x


ARCHS = {"resnet18": ([2, 2, 2, 2], BasicBlock, 1), "resnet50": ([3, 4, 6, 3], Bottleneck, 4)}


def compute_dtype(dtype: str = "auto") -> str:
  """`config.model.dtype` resolved: 'auto' is bfloat16 where the hardware computes it fast (GPU,
  TPU) and float32 on CPU (XLA:CPU emulates bf16 matmuls: slower than float32)."""
  if dtype == "auto":
    return "float32" if jax.default_backend() == "cpu" else "bfloat16"
  if dtype not in ("float32", "bfloat16"):
    raise UserError(f"config.model.dtype={dtype!r}: expected 'auto', 'float32' or 'bfloat16'")
  return dtype


def make_backbone(name: str, *, width: int = 64, dtype: str = "auto",
                  num_classes: int | None = None, conv: str = "auto") -> ResNet:
  if name not in ARCHS:
    raise UserError(f"config.model.backbone={name!r}: expected one of {sorted(ARCHS)}")
  stages, block, _ = ARCHS[name]
  return ResNet(stages, block, width=width, num_classes=num_classes,
                dtype={"float32": jnp.float32, "bfloat16": jnp.bfloat16}[compute_dtype(dtype)],
                conv=conv_lib.conv_module(conv),
                pool=pool_lib.max_pool_3x3_s2 if conv_lib.use_cpu_kernels(conv) else None)


def from_config(model_cfg) -> ResNet:
  """The backbone a `config.model` describes (configs saved before `conv` existed mean 'auto')."""
  return make_backbone(model_cfg.backbone, width=model_cfg.width, dtype=model_cfg.dtype,
                       conv=model_cfg.get("conv", "auto"))


def feature_dim(name: str, width: int = 64) -> int:
  return width * 8 * ARCHS[name][2]


def init_variables(module: nn.Module, image_size: int, key) -> dict:
  """A module's initial variables (params, batch_stats) for image_size x image_size RGB inputs."""
  x = jnp.zeros((2, image_size, image_size, 3), jnp.float32)
  return jax.jit(lambda k: module.init({"params": k}, x, train=False))(key)
