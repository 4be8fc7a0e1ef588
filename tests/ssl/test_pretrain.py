"""Pre-training loops: BYOL runs end to end (grid PNG, metrics, export) and resumes exactly."""

import json
import os

import numpy as np
import pytest

from hw4_jax.ssl import backbone_io, pretrain
from tests.helpers import run_python
from tests.ssl.tiny import load_config, shrink


def test_byol_resume_is_exact(tmp_path):
  data = str(tmp_path / "data")
  straight = shrink(load_config("byol"), steps=4, demo_dir=data)
  straight.byol.tau_schedule = "cosine"
  m = pretrain.train(straight, str(tmp_path / "a"))
  assert m["steps"] == 4 and m["final_tau"] == 1.0
  assert m["knn_history"][-1] == [4, m["knn_accuracy"]]   # the demo preset: only at the end
  assert m["probe_history"][-1] == [4, m["linear_probe_accuracy"]]
  assert os.path.isfile(tmp_path / "a" / "augment_pairs.png")
  _check_eval_mode(straight.copy_and_resolve_references(), tmp_path, m)
  interrupted = shrink(load_config("byol"), steps=4, demo_dir=data)
  interrupted.byol.tau_schedule = "cosine"
  interrupted.time_budget_s = 1e-9  # stops (and checkpoints) after the first step
  m1 = pretrain.train(interrupted, str(tmp_path / "b"))
  assert m1["steps"] == 1 and m1["stopped_early"]
  interrupted.time_budget_s = 0.0
  m2 = pretrain.train(interrupted, str(tmp_path / "b"))
  assert m2["steps"] == 4
  _, a = backbone_io.load(str(tmp_path / "a"))
  _, b = backbone_io.load(str(tmp_path / "b"))
  for x, y in zip(jax_leaves(a), jax_leaves(b)):
    np.testing.assert_array_equal(x, y)
  np.testing.assert_allclose(m2["final_loss"], m["final_loss"], rtol=0, atol=0)
  # The same backbone scores the same (the monitor is deterministic).
  assert (m2["knn_accuracy"], m2["linear_probe_accuracy"]) == (m["knn_accuracy"],
                                                               m["linear_probe_accuracy"])


def _check_eval_mode(c, tmp_path, m):
  """mode=eval on the finished workdir `a` scores its exported backbone as the end of training did
  and merges knn_accuracy / linear_probe_accuracy into metrics.json (the training keys kept); on a
  workdir without a backbone it scores the run's initial weights (pretrain.initial_backbone)."""
  c.mode = "eval"
  e = pretrain.evaluate(c, str(tmp_path / "a"))
  assert (e["knn_accuracy"], e["linear_probe_accuracy"]) == (m["knn_accuracy"],
                                                             m["linear_probe_accuracy"])
  with open(tmp_path / "a" / "metrics.json") as f:
    saved = json.load(f)
  assert saved["final_loss"] == m["final_loss"] and saved["eval_backbone"] == "backbone.msgpack"
  assert saved["linear_probe_accuracy"] == e["linear_probe_accuracy"]
  r = pretrain.evaluate(c, str(tmp_path / "init"))
  assert r["eval_backbone"] == f"random init (seed {c.seed})" and "final_loss" not in r
  assert {"knn_accuracy", "linear_probe_accuracy"} <= set(r) and r["linear_probe_l2"] in c.probe.l2


def jax_leaves(tree):
  import jax
  return jax.tree.leaves(tree)


def test_supervised_pretraining(tmp_path):
  c = shrink(load_config("supervised"), steps=3, demo_dir=str(tmp_path / "data"))
  c.knn.every = 0
  m = pretrain.train(c, str(tmp_path / "sup"))
  assert m["task"] == "supervised" and np.isfinite(m["final_loss"])
  meta, _ = backbone_io.load(str(tmp_path / "sup"))
  assert meta["task"] == "supervised" and meta["backbone"] == "resnet18"
  with open(tmp_path / "sup" / "metrics.json") as f:
    saved = json.load(f)
  assert saved["knn_accuracy"] == m["knn_accuracy"] and "linear_probe_accuracy" in saved


@pytest.mark.slow
def test_byol_step_independent_of_device_count(tmp_path):
  """The same BYOL steps on 1 and 2 devices: per-example keys and global BatchNorm make them equal."""
  code = f"""
import jax, numpy as np
from hw4_jax.ssl import pretrain, backbone_io
from tests.ssl.tiny import load_config, shrink
c = shrink(load_config("byol"), steps=2, demo_dir={str(tmp_path / 'data')!r})
c.knn.source = ""
m = pretrain.train(c, {str(tmp_path)!r} + f"/run{{jax.device_count()}}")
print("LOSS", repr(m["final_loss"]))
"""
  one = run_python(code, devices=1)
  two = run_python(code, devices=2)
  l1 = float(one.split("LOSS")[-1])
  l2 = float(two.split("LOSS")[-1])
  np.testing.assert_allclose(l1, l2, rtol=2e-4)
  _, a = backbone_io.load(str(tmp_path / "run1"))
  _, b = backbone_io.load(str(tmp_path / "run2"))
  for x, y in zip(jax_leaves(a), jax_leaves(b)):
    np.testing.assert_allclose(x, y, rtol=2e-3, atol=2e-4)
