"""Supervised pre-training (`task=supervised`, setting B's backbone). Presets: default, cpu, demo."""

import importlib.util
import os

from hw4_jax.core import presets
from hw4_jax.ssl import config_parts as parts


def _byol():
  spec = importlib.util.spec_from_file_location(
      "_byol_config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "byol.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _supervised(c):
  """Same data, backbone, augmentation and schedule as BYOL's preset; labels, cross-entropy."""
  c.task = "supervised"
  del c.byol
  return c


def default():
  return _supervised(_byol().default())


def cpu():
  c = _supervised(_byol().cpu())
  c.optim = parts.optim("adam", lr=1e-3, warmup_steps=100)
  return c


def demo():
  return _supervised(_byol().demo())


def get_config(arg=None):
  return presets.choose(arg, {"default": default, "cpu": cpu, "demo": demo})
