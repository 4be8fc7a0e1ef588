"""The embedded demo set: procedurally drawn shapes on textured backgrounds, so demos run anywhere.

Four classes (circle, square, triangle, stripes) with random colours, sizes, positions, rotations and
noisy backgrounds, written as JPEGs + `id,filename,label` CSVs in the course layout. Deterministic for a
seed, cheap (well under a second per hundred images), and hard enough that a random backbone is not
already perfect on it.
"""

from __future__ import annotations

import csv
import io
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from hw4_jax.core import files

CLASSES = ("circle", "square", "triangle", "stripes")


def _draw(rng: np.random.Generator, label: str, size: int) -> Image.Image:
  bg = rng.integers(0, 256, 3)
  noise = rng.normal(0, rng.uniform(5, 40), (size, size, 3))
  base = np.clip(bg[None, None, :] + noise, 0, 255).astype(np.uint8)
  im = Image.fromarray(base).filter(ImageFilter.GaussianBlur(rng.uniform(0, 2)))
  draw = ImageDraw.Draw(im)
  fg = tuple(int(c) for c in (bg + rng.integers(80, 176, 3)) % 256)
  r = rng.uniform(0.18, 0.38) * size
  cx, cy = rng.uniform(r, size - r, 2)
  angle = rng.uniform(0, 2 * math.pi)
  if label == "circle":
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
  elif label in ("square", "triangle"):
    n = 4 if label == "square" else 3
    pts = [(cx + r * math.cos(angle + 2 * math.pi * k / n),
            cy + r * math.sin(angle + 2 * math.pi * k / n)) for k in range(n)]
    draw.polygon(pts, fill=fg)
  else:  # stripes: parallel bars across the whole image
    period = rng.uniform(0.12, 0.25) * size
    yy, xx = np.mgrid[0:size, 0:size]
    phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
    mask = (phase % 1.0) < 0.5
    arr = np.asarray(im).copy()
    arr[mask] = fg
    im = Image.fromarray(arr)
  return im


def make_demo_set(root: str, *, size: int = 96, train_per_class: int = 48, val_per_class: int = 16,
                  seed: int = 0) -> dict:
  """Write `root/{train,val}/` + `root/{train,val}.csv` once; returns the paths (a data config dict)."""
  paths = {"train_csv": os.path.join(root, "train.csv"), "train_dir": os.path.join(root, "train"),
           "val_csv": os.path.join(root, "val.csv"), "val_dir": os.path.join(root, "val")}
  stamp = os.path.join(root, f".done_{size}_{train_per_class}_{val_per_class}_{seed}")
  if os.path.exists(stamp):
    return paths
  rng = np.random.default_rng(seed)
  for split, per_class in (("train", train_per_class), ("val", val_per_class)):
    os.makedirs(paths[f"{split}_dir"], exist_ok=True)
    rows = []
    for label in CLASSES:
      for k in range(per_class):
        name = f"{label}{k:05d}.jpg"
        path = os.path.join(paths[f"{split}_dir"], name)  # atomic: processes of a job share a workdir
        with files.atomic_path(path) as tmp:
          _draw(rng, label, size).save(tmp, "JPEG", quality=92)
        rows.append((len(rows), name, label))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "filename", "label"])
    w.writerows(rows)
    files.write_bytes(paths[f"{split}_csv"], buf.getvalue().encode(), all_processes=True)
  open(stamp, "w").close()
  return paths
