"""config_rules: every key of every preset has a rule and passes it; bad values are one UserError."""

import pytest

from hw4_jax import config_rules
from hw4_jax.core.errors import UserError
from tests.helpers import config_module

PRESETS = {"dvgo": ("default", "setting_a", "cpu", "cpu_fast", "demo", "compare"),
           "byol": ("default", "lars", "cpu", "demo"), "supervised": ("default", "cpu", "demo"),
           "classifier": ("default", "cpu", "demo"), "transfer": ("default", "cpu", "demo")}


@pytest.mark.parametrize("name,preset", [(n, p) for n, ps in PRESETS.items() for p in ps])
def test_every_preset_key_has_a_rule_and_passes(name, preset):
  config = config_module(name).get_config(preset)
  config_rules.check(config)   # a key without a rule, or a value breaking it, raises


def test_a_key_without_a_rule_is_an_error():
  config = config_module("dvgo").get_config("demo")
  with config.unlocked():
    config.coarse.new_knob = 3
  with pytest.raises(UserError, match=r"config.coarse.new_knob: not a key of task 'dvgo'"):
    config_rules.check(config)


@pytest.mark.parametrize("name,key,value,message", [
    ("dvgo", "coarse.num_iters", -1, "an integer >= 1"),
    ("dvgo", "fine.batch_size", 0, "an integer >= 1"),
    ("dvgo", "fine.pg_scale", ("a", "b"), "increasing step numbers"),
    ("dvgo", "fine.pg_scale", (500, 200), "increasing step numbers"),
    ("dvgo", "data.near", float("nan"), "a finite number"),
    ("dvgo", "coarse.pervoxel_count", "sample", "one of 'samples', 'projection'"),
    ("dvgo", "preempt_at", "fine", "'<loop>:<step>'"),
    ("byol", "data.image_size", 0, "an integer >= 8"),
    ("byol", "model.dtype", "float16", "one of 'auto', 'float32', 'bfloat16'"),
    ("byol", "byol.tau_schedule", "linear", "one of 'constant', 'cosine'"),
    ("byol", "probe.l2", (), "one or more penalties"),
    ("byol", "probe.holdout", 1.0, "< 1"),
    ("byol", "augment.crop_scale", (0.5,), "(min, max) area fractions"),
    ("byol", "augment.p_blur", 1.5, "<= 1.0"),
    ("classifier", "head.dropout", 1.0, "< 1"),
    ("transfer", "settings", "AXE", "letters of A-E"),
])
def test_bad_values_name_the_key(name, key, value, message):
  config = config_module(name).get_config("demo")
  node = config
  *head, leaf = key.split(".")
  for part in head:
    node = node[part]
  with config.unlocked():
    node[leaf] = value
  with pytest.raises(UserError, match=rf"config\.{key}=.*{message.replace('(', '[(]').replace(')', '[)]')}"):
    config_rules.check(config)


def test_cross_checks_and_nested_configs():
  dvgo = config_module("dvgo").get_config("demo")
  dvgo.data.near, dvgo.data.far = 2.0, 1.0
  with pytest.raises(UserError, match=r"config.data.far=1.0: expected a value above data.near"):
    config_rules.check(dvgo)
  sweep = config_module("transfer").get_config("demo")
  sweep.byol.train.batch_size = 0
  with pytest.raises(UserError, match=r"config.byol.train.batch_size=0"):
    config_rules.check(sweep)
  compare = config_module("dvgo").get_config("compare")
  compare.runs.cpu.fine.batch_size = 0
  with pytest.raises(UserError, match=r"config.runs.cpu.fine.batch_size=0"):
    config_rules.check(compare)
  # scaling steps past fine.num_iters are allowed: a short run stops at the level it reached
  compare = config_module("dvgo").get_config("compare")
  compare.runs.cpu.fine.num_iters = 100
  config_rules.check(compare)
