"""Optimizers for pre-training and fine-tuning: the seed's Adam + warm-up/cosine, or the paper's LARS."""

from __future__ import annotations

import jax
import optax

from hw4_jax.core import schedules
from hw4_jax.core.errors import UserError


def _not_bias_or_norm(params):
  """LARS convention: no weight decay / trust ratio for biases and BatchNorm (1-D) parameters."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(optim, total_steps: int, batch_size: int):
  """`optim` is a config.optim block; returns (transformation, lr schedule)."""
  name = optim.name
  if name == "adam":
    lr = schedules.warmup_cosine(optim.lr, optim.warmup_steps, total_steps)
    tx = optax.adam(lr, b1=optim.get("b1", 0.9), b2=optim.get("b2", 0.999))
    if optim.get("weight_decay", 0.0):
      tx = optax.adamw(lr, weight_decay=optim.weight_decay, mask=_not_bias_or_norm)
    return tx, lr
  if name == "lars":
    # BYOL paper: lr = base_lr * batch / 256, warm-up then cosine, weight decay 1.5e-6, momentum 0.9.
    peak = optim.lr * batch_size / 256.0
    lr = schedules.warmup_cosine(peak, optim.warmup_steps, total_steps)
    tx = optax.lars(lr, weight_decay=optim.get("weight_decay", 1.5e-6),
                    weight_decay_mask=_not_bias_or_norm, trust_ratio_mask=_not_bias_or_norm,
                    momentum=optim.get("momentum", 0.9))
    return tx, lr
  raise UserError(f"config.optim.name={name!r}: expected 'adam' or 'lars'")
