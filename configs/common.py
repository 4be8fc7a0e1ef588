"""Pieces shared by the config files, imported as a sibling (`import common`).

`python -m hw4_jax.main --config=DIR/x.py` puts DIR on `sys.path` before ml_collections loads the
file, so a config file imports its siblings (`common`, another task's config) by name, from the
checkout or from a copy of this folder anywhere (docs/architecture.md says why this way). Values are
the reference report's (the HW4 report the presets come from) unless a comment says otherwise.
"""

import ml_collections

DATA = "../shared/data"   # the workplace's real data, relative to the repository root


def choose(arg, presets, default="default"):
  """The preset named `arg` (None or '' = `default`); a typo is one error that lists the names."""
  name = arg or default
  if name not in presets:
    raise ValueError(f"unknown preset '{name}'; valid presets: {', '.join(presets)}")
  config = presets[name]()
  config.preset = name
  return config


def loop_keys(c, *, log_every=100, checkpoint_every=1000, keep_checkpoints=2):
  """The keys every training loop reads (hw4_jax/core/loop.py), at the top level of every task."""
  c.log_every = log_every                # progress line, TensorBoard and metrics.jsonl cadence
  c.checkpoint_every = checkpoint_every  # steps; the end of each loop is always saved
  c.keep_checkpoints = keep_checkpoints  # per loop
  c.time_budget_s = 0.0                  # > 0: each loop stops after this many seconds, as finished
  c.preempt_at = ""                      # "<loop>:<step>": save and exit 75 there (tests resume)
  return c


# --- SSL pieces (byol, supervised, classifier, transfer) ---

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


def model(backbone="resnet50", width=64, dtype="auto", conv="auto"):
  """`dtype`: 'auto' (bfloat16 on GPU/TPU, float32 on CPU: the reference's mixed precision where it
  pays), 'float32' or 'bfloat16'; `conv`: 'auto' (on CPU, wide layers as matmuls:
  hw4_jax/ssl/conv.py), 'xla' or 'gemm'."""
  return ml_collections.ConfigDict(dict(backbone=backbone, width=width, dtype=dtype, conv=conv))


def augment(crop_size=128):
  """The reference report's BYOL augmentation (see hw4_jax/ssl/augment.py)."""
  return ml_collections.ConfigDict(dict(
      crop_size=crop_size, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3),
      brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, p_jitter=0.3, p_gray=0.2, p_flip=0.5,
      blur_sigma=(1.0, 2.0), p_blur=0.2))


def optim(name="adam", lr=1e-4, warmup_steps=1000):
  return ml_collections.ConfigDict(dict(name=name, lr=lr, warmup_steps=warmup_steps, b1=0.9,
                                        b2=0.999, weight_decay=0.0, momentum=0.9))


def lars():
  """The BYOL paper's recipe: LARS, base lr 0.2 x batch/256, weight decay 1.5e-6. Warm-up: the
  paper's is 10 epochs (of ImageNet); here it is 1000 steps, which at batch 512 is ~83 epochs of
  `mini` (12 steps per epoch), not 10."""
  o = optim("lars", lr=0.2, warmup_steps=1000)
  o.weight_decay = 1.5e-6
  return o


def train(batch_size, num_epochs):
  """`num_steps` > 0 overrides `num_epochs`; `batch_size` is global (split over every device)."""
  return ml_collections.ConfigDict(dict(batch_size=batch_size, num_epochs=num_epochs, num_steps=0))


def knn(d=None, every=1000, k=20, batch_size=128):
  """The labelled set of the kNN / linear-probe monitor and of `mode=eval` (its train part is the
  memory bank and the probe's training data, val the queries). No set (the default) = no monitor."""
  d = d if d is not None else data()
  d.update(dict(k=k, every=every, batch_size=batch_size))
  return d


def probe(every=1000):
  """The linear probe on the `knn` set: L2 penalty chosen from `l2` on a `holdout` part of its train
  split, `steps` L-BFGS iterations (hw4_jax/ssl/probe.py)."""
  return ml_collections.ConfigDict(dict(every=every, holdout=0.2, l2=(1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
                                        steps=100))
