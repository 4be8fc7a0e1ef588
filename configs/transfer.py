"""The A-E transfer sweep (`task=transfer`): pre-trainings (unless given) + five classifier runs.

`config.byol_workdir` / `config.supervised_workdir` point at finished pre-training workdirs; empty means
the sweep runs `config.byol` / `config.supervised` first. `config.classifier` is the fine-tuning config
shared by all settings (its `pretrained` / `freeze_backbone` are set per setting).
"""

import importlib.util
import os

import ml_collections

from hw4_jax.core import presets


def _load(name):
  spec = importlib.util.spec_from_file_location(
      f"_{name}_config", os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _sweep(preset):
  c = ml_collections.ConfigDict()
  c.task, c.mode, c.seed = "transfer", "train", 0
  c.settings = "ABCDE"
  c.byol_workdir = ""
  c.supervised_workdir = ""
  c.byol = _load("byol").get_config(preset)
  c.supervised = _load("supervised").get_config(preset)
  c.classifier = _load("classifier").get_config(preset)
  # The fine-tuning data/model, also reachable as --config.data.* / --config.model.* (same objects;
  # `pretrained` / `freeze_backbone` are set per setting, so the sweep has none of its own).
  c.data = c.classifier.data
  c.model = c.classifier.model
  return c


def get_config(arg=None):
  return presets.choose(arg, {"default": lambda: _sweep("default"), "cpu": lambda: _sweep("cpu"),
                              "demo": lambda: _sweep("demo")})
