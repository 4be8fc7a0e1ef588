"""Classifier fine-tuning (`task=classifier`, modes train | predict). Presets: default, cpu, demo.

`config.pretrained` = a pre-training workdir (BYOL or supervised) or '' (random init);
`config.freeze_backbone` = True trains the head only (BatchNorm in inference mode).
"""

import ml_collections

from hw4_jax.core import presets
from hw4_jax.ssl import config_parts as parts


def default():
  c = ml_collections.ConfigDict()
  c.task, c.mode, c.seed = "classifier", "train", 0
  c.data = parts.flowers(image_size=128)  # Office-Home layout; its images are not public here
  c.model = parts.model("resnet50")
  c.pretrained = ""
  c.freeze_backbone = False
  c.head = ml_collections.ConfigDict(dict(hidden=256, layers=4, dropout=0.1, slope=0.2))
  c.augment = parts.augment(crop_size=128)
  c.optim = parts.optim("adam", lr=5e-4, warmup_steps=100)
  c.train = parts.train(batch_size=64, num_epochs=300, log_every=50, checkpoint_every=1000)
  c.train.eval_every = 0  # steps; 0 = once per epoch
  c.train.eval_batch_size = 128
  c.predict = ml_collections.ConfigDict(dict(csv="", image_dir="", output_csv="", batch_size=128))
  return c


def cpu():
  """ResNet-18 width 16 (= byol/supervised cpu) at 96 px, a few epochs: minutes per setting."""
  c = default()
  c.data = parts.flowers(image_size=96)
  c.data.num_threads = 2
  c.model = parts.model("resnet18", width=16)  # the architecture of configs/byol.py:cpu's backbone
  c.augment = parts.augment(crop_size=96)
  c.train = parts.train(batch_size=64, num_epochs=4, log_every=10, checkpoint_every=200)
  c.train.eval_every, c.train.eval_batch_size = 30, 128
  return c


def demo():
  c = default()
  c.data = parts.demo(image_size=96)
  c.data.num_threads = 2
  c.model = parts.model("resnet18", width=16)
  c.augment = parts.augment(crop_size=96)
  c.optim = parts.optim("adam", lr=1e-3, warmup_steps=5)
  c.train = parts.train(batch_size=32, num_epochs=3, log_every=5, checkpoint_every=20)
  c.train.eval_every, c.train.eval_batch_size = 6, 64
  return c


def get_config(arg=None):
  return presets.choose(arg, {"default": default, "cpu": cpu, "demo": demo})
