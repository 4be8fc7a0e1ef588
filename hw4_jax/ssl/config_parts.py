"""Config blocks shared by configs/{byol,supervised,classifier,transfer}.py (values = the seed's)."""

from __future__ import annotations

import ml_collections

DATA = "../shared/data"


def data(train_csv="", train_dir="", val_csv="", val_dir="", image_size=128, source=""):
  """Where the images are: CSV + folder, or `source='tfds:<name>'`, or `source='demo'`."""
  return ml_collections.ConfigDict(dict(
      source=source, train_csv=train_csv, train_dir=train_dir, val_csv=val_csv, val_dir=val_dir,
      image_size=image_size, tfds_data_dir="", demo_dir="", num_threads=8, num_workers=0))


def mini(image_size=128):
  return data(f"{DATA}/mini/train.csv", f"{DATA}/mini/train", image_size=image_size)


def flowers(image_size=128):
  return data(f"{DATA}/flowers/train.csv", f"{DATA}/flowers/train", f"{DATA}/flowers/val.csv",
              f"{DATA}/flowers/val", image_size=image_size)


def demo(image_size=96):
  return data(image_size=image_size, source="demo")


def model(backbone="resnet50", width=64, dtype="float32", conv="auto"):
  """`conv`: 'auto' (on CPU, wide layers as matmuls: hw4_jax/ssl/conv.py), 'xla' or 'gemm'."""
  return ml_collections.ConfigDict(dict(backbone=backbone, width=width, dtype=dtype, conv=conv))


def augment(crop_size=128):
  """The seed's BYOL augmentation (see hw4_jax/ssl/augment.py)."""
  return ml_collections.ConfigDict(dict(
      crop_size=crop_size, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3),
      brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, p_jitter=0.3, p_gray=0.2, p_flip=0.5,
      blur_sigma=(1.0, 2.0), p_blur=0.2))


def optim(name="adam", lr=1e-4, warmup_steps=1000):
  return ml_collections.ConfigDict(dict(name=name, lr=lr, warmup_steps=warmup_steps, b1=0.9,
                                        b2=0.999, weight_decay=0.0, momentum=0.9))


def lars():
  """The BYOL paper's recipe: LARS, base lr 0.2 x batch/256, weight decay 1.5e-6, 10 warm-up epochs."""
  o = optim("lars", lr=0.2, warmup_steps=1000)
  o.weight_decay = 1.5e-6
  return o


def train(batch_size, num_epochs, log_every=50, checkpoint_every=1000):
  return ml_collections.ConfigDict(dict(
      batch_size=batch_size, num_epochs=num_epochs, num_steps=0, log_every=log_every,
      checkpoint_every=checkpoint_every, keep_checkpoints=2, time_budget_s=0.0))


def knn(d=None, every=1000, k=20, batch_size=128):
  """Labeled set for the kNN monitor during pre-training (empty train_csv = no monitor)."""
  d = d if d is not None else data()
  d.update(dict(k=k, every=every, batch_size=batch_size))
  return d
