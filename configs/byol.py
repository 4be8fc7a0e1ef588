"""BYOL self-supervised pre-training (`task=byol`). Presets:

- `default`: the reference report (ResNet-50 at 128 px, Adam 1e-4, batch 512, 1000 epochs, the target
  EMA a constant tau = 0.99 as in byol-pytorch). Reads ../shared/data/mini (set `data.train_dir` to a
  folder of your images, or `data.train_csv` + `data.train_dir`).
- `lars`: the BYOL paper's recipe on the same data: LARS, tau on a cosine from 0.996 to 1.
- `cpu`: finishes on a 2-core CPU; reads ../shared/data/mini. tau on a cosine from 0.99 to 1 (what
  its other values were tuned with, docs/tuning-log.md), not the reference's constant.
- `demo`: the generated shapes set, no data on disk; the reference's constant tau = 0.99; its kNN /
  linear-probe monitor (and `mode=eval`) scores on the generated labelled set.

The kNN / linear-probe monitor is off unless `knn.*` names a labelled set (e.g. flowers:
`--config.knn.train_csv=../shared/data/flowers/train.csv --config.knn.train_dir=...`, or class folders
`--config.knn.train_dir=DIR/train --config.knn.val_dir=DIR/val`).
"""

import ml_collections

import common


def default():
  c = ml_collections.ConfigDict()
  c.task, c.mode, c.seed = "byol", "train", 0
  common.loop_keys(c, log_every=50, checkpoint_every=1000)
  c.data = common.mini(image_size=128)
  c.model = common.model("resnet50")
  # predictor_lr_mult: the predictor's step size relative to the rest (1 = the report's single Adam).
  c.byol = ml_collections.ConfigDict(dict(hidden_dim=4096, proj_dim=256, tau_schedule="constant",
                                          tau_base=0.99, predictor_lr_mult=1.0))
  c.augment = common.augment(crop_size=128)
  c.optim = common.optim("adam", lr=1e-4, warmup_steps=1000)
  c.train = common.train(batch_size=512, num_epochs=1000)
  c.knn = common.knn(every=5000)
  c.probe = common.probe(every=5000)
  return c


def lars():
  """The BYOL paper's LARS and tau schedule (cosine from 0.996 to 1) instead of the reference's."""
  c = default()
  c.optim = common.lars()
  c.byol.tau_schedule, c.byol.tau_base = "cosine", 0.996
  return c


def cpu():
  """Finishes on a 2-core CPU (reads ../shared/data/mini): ResNet-18 width 16 at 96 px (the XLA:CPU
  2x2-conv trap), batch 64, 20 epochs, tau on a cosine from 0.99. docs/tuning-log.md has the
  measurements behind each change."""
  c = default()
  c.data = common.mini(image_size=96)
  c.model = common.model("resnet18", width=16)   # 4x the steps of width 64 in the same minutes
  c.byol.hidden_dim = 512                        # 4096 would dominate the step
  c.byol.tau_schedule = "cosine"                 # tuned with it (0.99 -> 1)
  c.augment = common.augment(crop_size=96)
  # A few epochs only: no tiny crops, no colour invariance (it erases the colour cues flowers needs).
  c.augment.crop_scale = (0.2, 1.0)
  c.augment.p_jitter = 0.0
  c.augment.p_gray = 0.0
  # A 10x faster predictor keeps the features from collapsing; then a higher lr helps.
  c.byol.predictor_lr_mult = 10.0
  c.optim = common.optim("adam", lr=5e-4, warmup_steps=50)
  c.train = common.train(batch_size=64, num_epochs=20)
  c.log_every, c.checkpoint_every = 10, 200
  c.knn = common.knn(every=500, batch_size=128)
  c.probe = common.probe(every=500)
  c.data.num_threads = c.knn.num_threads = 2
  return c


def demo():
  """Minutes anywhere: the generated shapes set, a narrow ResNet-18 at 96 px, the reference's
  constant tau; the monitor scores on the generated labelled set."""
  c = default()
  c.data = common.demo(image_size=96)
  c.model = common.model("resnet18", width=16)
  c.byol.hidden_dim = 256
  c.augment = common.augment(crop_size=96)
  c.optim = common.optim("adam", lr=1e-3, warmup_steps=10)
  c.train = common.train(batch_size=32, num_epochs=3)
  c.log_every, c.checkpoint_every = 5, 20
  c.knn = common.knn(common.demo(image_size=96), every=0, batch_size=64)
  c.probe = common.probe(every=0)
  c.data.num_threads = c.knn.num_threads = 2
  return c


def get_config(arg=None):
  return common.choose(arg, {"default": default, "cpu": cpu, "demo": demo, "lars": lars})
