"""The A-E transfer sweep (`task=transfer`): pre-trainings (unless given) + five classifier runs.

`config.byol_workdir` / `config.supervised_workdir` point at finished pre-training workdirs; empty means
the sweep runs `config.byol` / `config.supervised` first. `config.classifier` is the fine-tuning config
shared by all settings (its `pretrained` / `freeze_backbone` are set per setting). Presets: default,
cpu, demo, built from the byol / supervised / classifier presets of the same name: `default` and `cpu`
read ../shared/data (mini to pre-train, flowers to fine-tune; elsewhere set `byol.data.*`,
`supervised.data.*` and `data.*`, or stop with one error naming the missing path and its key);
`demo` needs no data.
"""

import ml_collections

import byol
import classifier
import common
import supervised


def _sweep(preset):
  c = ml_collections.ConfigDict()
  c.task, c.mode = "transfer", "train"
  c.settings = "ABCDE"
  c.byol_workdir = ""
  c.supervised_workdir = ""
  c.byol = byol.get_config(preset)
  c.supervised = supervised.get_config(preset)
  c.classifier = classifier.get_config(preset)
  # The fine-tuning data/model, also reachable as --config.data.* / --config.model.* (same objects;
  # `pretrained` / `freeze_backbone` are set per setting, so the sweep has none of its own).
  c.data = c.classifier.data
  c.model = c.classifier.model
  return c


def get_config(arg=None):
  return common.choose(arg, {"default": lambda: _sweep("default"), "cpu": lambda: _sweep("cpu"),
                             "demo": lambda: _sweep("demo")})
