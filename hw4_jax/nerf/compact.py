"""Static-shape stream compaction and prefix sums (the building blocks of empty-space skipping).

XLA needs static shapes, so "keep the entries where `mask` holds" is a running count (prefix sum)
plus a scatter of the kept entries' ids into a fixed-capacity buffer; the rest is padding. Prefix
sums use `lax.associative_scan`, measured 2-3x faster than `jnp.cumsum` on XLA:CPU.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def round_up(n: float, multiple: int = 8) -> int:
  return max(multiple, int(math.ceil(n / multiple)) * multiple)


def scan_add(x, axis: int = 0):
  """Inclusive prefix sum along `axis`."""
  return jax.lax.associative_scan(jnp.add, x, axis=axis)


def segment_exclusive_scan(values, starts):
  """Exclusive prefix sum of `values` [P] restarted wherever `starts` is True. Exact per segment:
  no subtraction of running totals, so other segments' magnitudes never enter."""
  def op(a, b):
    return a[0] | b[0], jnp.where(b[0], b[1], a[1] + b[1])
  _, incl = jax.lax.associative_scan(op, (starts, values))
  prev = jnp.concatenate([jnp.zeros((1,), values.dtype), incl[:-1]])
  return jnp.where(starts, jnp.zeros_like(prev), prev)


def compact_ids(keep, pos, cap: int):
  """Ids [cap] of the kept entries of a flat mask `keep` [N], in order, given their inclusive
  running count `pos`; padding = N, and kept entries past `cap` are dropped."""
  n = keep.shape[0]
  dst = jnp.where(keep & (pos <= cap), pos - 1, cap)
  return jnp.full((cap,), n, jnp.int32).at[dst].set(jnp.arange(n, dtype=jnp.int32), mode="drop")


def compact(keep, cap: int):
  """`compact_ids` with its own running count: (ids [cap], number kept (may exceed cap))."""
  pos = scan_add(keep.astype(jnp.int32))
  return compact_ids(keep, pos, cap), pos[-1]
