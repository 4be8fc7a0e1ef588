"""Benchmark: seconds per batch of the BYOL augmentation (`ssl/augment.py`), jitted, on this machine.

The reference's pipeline (configs/common.py `augment()`: colour jitter p 0.3, greyscale, flip, blur,
random resized crop) on --batch uint8 images of --size px, and its colour jitter alone (every example
jittered: under `vmap` both sides of the p=0.3 choice are computed anyway). --module=PATH times
another copy of augment.py (e.g. `git show REV:hw4_jax/ssl/augment.py > /tmp/a.py`) for a
before/after. Report `uptime`'s load next to the figures. Prints one line:
  augment_step batch=64 size=128 augment_s=<s> jitter_s=<s>
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "configs")]   # this checkout's hw4_jax, not an installed one

_BATCH = flags.DEFINE_integer("batch", 64, "Images per batch.")
_SIZE = flags.DEFINE_integer("size", 128, "Image and crop size.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed batches (after 2 warm-up ones); the median.")
_MODULE = flags.DEFINE_string("module", "", "An augment.py to time instead of hw4_jax.ssl.augment.")


def _module():
  if not _MODULE.value:
    from hw4_jax.ssl import augment
    return augment
  spec = importlib.util.spec_from_file_location("augment_under_test", _MODULE.value)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _median_seconds(fn, *args) -> float:
  import numpy as np
  for _ in range(2):
    fn(*args).block_until_ready()
  times = []
  for _ in range(_REPEATS.value):
    t = time.perf_counter()
    fn(*args).block_until_ready()
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def main(argv):
  del argv
  import jax
  import numpy as np
  import common
  aug = _module()
  cfg = common.augment(crop_size=_SIZE.value)
  images = jax.numpy.asarray(np.random.default_rng(0).integers(
      0, 256, (_BATCH.value, _SIZE.value, _SIZE.value, 3), dtype=np.uint8))
  key = jax.random.PRNGKey(0)
  full = jax.jit(lambda k, x: aug.augment_batch(k, x, cfg))
  jitter = jax.jit(lambda k, x: jax.vmap(lambda kk, im: aug.color_jitter(kk, im / 255.0))(
      jax.random.split(k, x.shape[0]), x))
  jitter_s = _median_seconds(jitter, key, images)
  augment_s = _median_seconds(full, key, images)
  print(f"augment_step batch={_BATCH.value} size={_SIZE.value} augment_s={augment_s:.4f} "
        f"jitter_s={jitter_s:.4f} load={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  app.run(main)
