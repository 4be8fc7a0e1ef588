"""A generated labelled set on which BYOL has something to learn that its random init lacks.

Four classes of texture (horizontal stripes, vertical stripes, a checkerboard, dots) at a random
period (5-8 px) and phase, each image drawn in a dark and a light shade of one random hue, plus a
little noise. A random network's pooled features are dominated by the hue (measured, issue 14: a kNN
on the features of a ResNet-18 width 16 at init tells an image's hue quarter 79.5 % of the time, its
class 57.5 %), and BYOL's colour jitter with hue 0.5 (any hue) randomises exactly that between the
two views, while the texture survives every augmentation (the flip and the crops keep the
orientation; the period range covers the crops' rescaling) and little else does: one hue and fixed
shades leave no colour contrast or light/dark polarity for the two views to share instead. So
BYOL lowers its loss by learning hue-invariant texture features, and its kNN rises well above the
paired init's (tests/ssl/test_quality.py). On the demo shapes set short runs gave no reliable gain
(docs/benchmarks.md, session 6).

Class folders (the ImageFolder layout) of PNGs, deterministic for a seed, well under a second.
"""

from __future__ import annotations

import colorsys
import os

import numpy as np

from hw4_jax.core import files

CLASSES = ("checker", "dots", "hstripes", "vstripes")   # sorted: folder order = label order


def draw(rng: np.random.Generator, label: str, size: int = 32) -> np.ndarray:
  """One size x size x 3 uint8 image of texture `label` in a random hue."""
  hue = rng.uniform()
  dark = np.array(colorsys.hsv_to_rgb(hue, 0.8, 0.35))
  light = np.array(colorsys.hsv_to_rgb(hue, 0.8, 0.9))
  period = rng.uniform(5.0, 8.0)
  phase = rng.uniform(0.0, 1.0, 2)
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
  a, b = (yy / period + phase[0]) % 1.0, (xx / period + phase[1]) % 1.0
  mask = {"hstripes": a < 0.5, "vstripes": b < 0.5, "checker": (a < 0.5) ^ (b < 0.5),
          "dots": (a - 0.5) ** 2 + (b - 0.5) ** 2 < 0.09}[label]
  image = np.where(mask[..., None], light, dark) + rng.normal(0.0, 0.03, (size, size, 3))
  return files.to_uint8(image)


def make_set(root: str, *, size: int = 32, train_per_class: int = 100, val_per_class: int = 50,
             seed: int = 0) -> dict:
  """Write `root/{train,val}/<class>/*.png` once; returns {'train_dir', 'val_dir'}."""
  paths = {f"{split}_dir": os.path.join(root, split) for split in ("train", "val")}
  stamp = os.path.join(root, f".done_{size}_{train_per_class}_{val_per_class}_{seed}")
  if os.path.exists(stamp):
    return paths
  rng = np.random.default_rng(seed)
  for split, per_class in (("train", train_per_class), ("val", val_per_class)):
    for label in CLASSES:
      os.makedirs(os.path.join(paths[f"{split}_dir"], label), exist_ok=True)
      for k in range(per_class):
        files.save_png(os.path.join(paths[f"{split}_dir"], label, f"{k:04d}.png"),
                       draw(rng, label, size))
  open(stamp, "w").close()
  return paths
