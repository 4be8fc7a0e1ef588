"""Optimizers for pre-training and fine-tuning: the reference report's Adam (AdamW with weight decay)
+ warm-up/cosine, or the BYOL paper's LARS."""

from __future__ import annotations

import jax
import optax

from hw4_jax.core.errors import UserError


def warmup_cosine(peak: float, warmup_steps: int, total_steps: int, end: float = 0.0) -> optax.Schedule:
  """Linear warm-up from 0 to `peak` over `warmup_steps`, then cosine to `end` at `total_steps`."""
  warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, max(total_steps, warmup_steps + 1),
                                            end_value=end)


def _not_bias_or_norm(params):
  """LARS / AdamW convention: no weight decay (or trust ratio) for biases and BatchNorm (1-D) params."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(optim, total_steps: int, batch_size: int):
  """`optim` is a config.optim block; returns (transformation, lr schedule)."""
  name = optim.name
  if name == "adam":
    lr = warmup_cosine(optim.lr, optim.warmup_steps, total_steps)
    b1, b2 = optim.get("b1", 0.9), optim.get("b2", 0.999)
    if optim.get("weight_decay", 0.0):
      return optax.adamw(lr, b1=b1, b2=b2, weight_decay=optim.weight_decay,
                         mask=_not_bias_or_norm), lr
    return optax.adam(lr, b1=b1, b2=b2), lr
  if name == "lars":
    # BYOL paper: lr = base_lr * batch / 256, warm-up then cosine, weight decay 1.5e-6, momentum 0.9.
    peak = optim.lr * batch_size / 256.0
    lr = warmup_cosine(peak, optim.warmup_steps, total_steps)
    tx = optax.lars(lr, weight_decay=optim.get("weight_decay", 1.5e-6),
                    weight_decay_mask=_not_bias_or_norm, trust_ratio_mask=_not_bias_or_norm,
                    momentum=optim.get("momentum", 0.9))
    return tx, lr
  raise UserError(f"config.optim.name={name!r}: expected 'adam' or 'lars'")
