"""Learning-rate schedules used by the configs (thin names over optax)."""

from __future__ import annotations

import optax


def warmup_cosine(peak: float, warmup_steps: int, total_steps: int, end: float = 0.0) -> optax.Schedule:
  """Linear warm-up from 0 to `peak` over `warmup_steps`, then cosine to `end` at `total_steps`."""
  warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, max(total_steps, warmup_steps + 1),
                                            end_value=end)


def exp_decay(lr: float, decay_steps: int, rate: float) -> optax.Schedule:
  """`lr * rate ** (step / decay_steps)` (DVGO: 0.1 ** (step / 20000)), continuous."""
  return optax.exponential_decay(lr, decay_steps, rate)
