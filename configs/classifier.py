"""Classifier fine-tuning (`task=classifier`, modes train | predict). Presets: default, cpu, demo.
`default` and `cpu` read ../shared/data/flowers (elsewhere: `data.train_dir` / `data.val_dir` = one
sub-folder per class, or CSVs `id,filename,label` + their folders); `demo` needs no data.

`config.pretrained` = a pre-training workdir (BYOL or supervised) or '' (random init);
`config.freeze_backbone` = True trains the head only (BatchNorm in inference mode).
"""

import ml_collections

import common


def default():
  c = ml_collections.ConfigDict()
  c.task, c.mode, c.seed = "classifier", "train", 0
  common.loop_keys(c, log_every=50, checkpoint_every=1000)
  c.data = common.flowers(image_size=128)  # Office-Home layout; its images are not public here
  c.model = common.model("resnet50")
  c.pretrained = ""
  c.freeze_backbone = False
  c.head = ml_collections.ConfigDict(dict(hidden=256, layers=4, dropout=0.1, slope=0.2))
  c.augment = common.augment(crop_size=128)
  c.optim = common.optim("adam", lr=5e-4, warmup_steps=100)
  c.train = common.train(batch_size=64, num_epochs=300)
  c.train.eval_every = 0  # steps; 0 = once per epoch
  c.train.eval_batch_size = 128
  c.predict = ml_collections.ConfigDict(dict(csv="", image_dir="", output_csv="", batch_size=128))
  return c


def cpu():
  """ResNet-18 width 16 (= byol/supervised cpu) at 96 px, a few epochs: minutes per setting."""
  c = default()
  c.data = common.flowers(image_size=96)
  c.data.num_threads = 2
  c.model = common.model("resnet18", width=16)  # the architecture of configs/byol.py:cpu's backbone
  c.augment = common.augment(crop_size=96)
  c.train = common.train(batch_size=64, num_epochs=4)
  c.log_every, c.checkpoint_every = 10, 200
  c.train.eval_every, c.train.eval_batch_size = 30, 128
  return c


def demo():
  c = default()
  c.data = common.demo(image_size=96)
  c.data.num_threads = 2
  c.model = common.model("resnet18", width=16)
  c.augment = common.augment(crop_size=96)
  c.optim = common.optim("adam", lr=1e-3, warmup_steps=5)
  c.train = common.train(batch_size=32, num_epochs=3)
  c.log_every, c.checkpoint_every = 5, 20
  c.train.eval_every, c.train.eval_batch_size = 6, 64
  return c


def get_config(arg=None):
  return common.choose(arg, {"default": default, "cpu": cpu, "demo": demo})
