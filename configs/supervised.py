"""Supervised pre-training (`task=supervised`, setting B's backbone). Presets: default, cpu, demo:
BYOL's preset of the same name (data, backbone, augmentation, schedule, monitor) with labels and
cross-entropy. `default` and `cpu` read ../shared/data/mini (elsewhere: `data.train_dir` = one
sub-folder per class, or `data.train_csv` + `data.train_dir`); `demo` needs no data."""

import byol
import common


def _supervised(c):
  c.task = "supervised"
  del c.byol
  return c


def default():
  return _supervised(byol.default())


def cpu():
  c = _supervised(byol.cpu())
  c.optim = common.optim("adam", lr=1e-3, warmup_steps=100)
  return c


def demo():
  return _supervised(byol.demo())


def get_config(arg=None):
  return common.choose(arg, {"default": default, "cpu": cpu, "demo": demo})
