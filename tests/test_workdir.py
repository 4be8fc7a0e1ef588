"""workdir.claim: which configuration changes a workdir accepts, per mode, and config.json."""

import json
import os

import pytest

from hw4_jax import workdir
from hw4_jax.core.errors import UserError
from tests.helpers import load_config


def _with(config, mode="train", **changes):
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.mode = mode
    for key, value in changes.items():
      node = c
      *head, leaf = key.split("__")
      for part in head:
        node = node[part]
      node[leaf] = value
  return c


def test_training_resumes_only_with_the_same_model_data_and_optimisation(tmp_path):
  byol = load_config("byol", "demo")
  workdir.claim(byol, str(tmp_path))
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["task"] == "byol" and saved["model"]["width"] == byol.model.width
  for ok in ({"train__num_steps": 50}, {"log_every": 7, "checkpoint_every": 3},
             {"time_budget_s": 60.0, "preempt_at": "byol:3"}, {"knn__every": 5}):
    workdir.claim(_with(byol, **ok), str(tmp_path))
  for key, value in (("model__width", 8), ("optim__lr", 0.5), ("data__image_size", 64),
                     ("seed", 3), ("augment__p_blur", 0.5)):
    with pytest.raises(UserError, match=rf"another configuration: {key.replace('__', '.')} "):
      workdir.claim(_with(byol, **{key: value}), str(tmp_path))


def test_other_modes_compare_only_what_builds_the_model(tmp_path):
  cls = load_config("classifier", "demo")
  workdir.claim(cls, str(tmp_path))
  before = (tmp_path / "config.json").read_text()
  workdir.claim(_with(cls, "predict", pretrained="/elsewhere", freeze_backbone=True,
                      optim__lr=0.5, predict__csv="x.csv"), str(tmp_path))
  assert (tmp_path / "config.json").read_text() == before   # predict does not rewrite it
  with pytest.raises(UserError, match=r"head.hidden \(256 there, 16 now\)"):
    workdir.claim(_with(cls, "predict", head__hidden=16), str(tmp_path))
  with pytest.raises(UserError, match="freeze_backbone"):   # but training does
    workdir.claim(_with(cls, freeze_backbone=True), str(tmp_path))


def test_another_tasks_workdir_is_refused_also_without_config_json(tmp_path):
  dvgo = tmp_path / "dvgo"
  dvgo.mkdir()
  (dvgo / "model.npz").write_bytes(b"")           # a DVGO workdir from before config.json
  with pytest.raises(UserError, match="holds a 'dvgo' run, not 'byol'"):
    workdir.claim(load_config("byol", "demo"), str(dvgo))
  assert not (dvgo / "config.json").exists()
  workdir.claim(load_config("dvgo", "demo"), str(dvgo))   # accepted, and it gets one
  assert json.loads((dvgo / "config.json").read_text())["task"] == "dvgo"
  with pytest.raises(UserError, match="holds a 'dvgo' run, not 'classifier'"):
    workdir.claim(load_config("classifier", "demo"), str(dvgo))


def test_undo_leaves_an_existing_workdir_as_it_was(tmp_path):
  byol = load_config("byol", "demo")
  undo = workdir.claim(byol, str(tmp_path))
  undo()
  assert os.listdir(tmp_path) == []
  workdir.claim(byol, str(tmp_path))
  before = (tmp_path / "config.json").read_bytes()
  workdir.claim(_with(byol, train__num_steps=9), str(tmp_path))()
  assert (tmp_path / "config.json").read_bytes() == before
