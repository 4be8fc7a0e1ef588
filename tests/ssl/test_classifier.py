"""Classifier: a frozen backbone stays put, predict writes the same rows, the vocabulary round-trips."""

import csv
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw4_jax.core.checkpoint import Checkpointer
from hw4_jax.ssl import classifier, demo, pretrain, supervised
from tests.ssl.tiny import load_config, shrink


def _steps(frozen: bool, n: int = 2):
  c = shrink(load_config("classifier"), size=64)
  c.freeze_backbone = frozen
  net, state, lr = classifier.build(c, num_classes=4, steps=10)
  before = jax.tree.map(np.asarray, {"params": state.params, "stats": state.model_state})
  step = jax.jit(supervised.step_fn(net, c.augment, lr, frozen))
  rng = np.random.default_rng(0)
  for _ in range(n):
    batch = {"image": jnp.asarray(rng.integers(0, 256, (8, 64, 64, 3)), jnp.uint8),
             "label": jnp.asarray(rng.integers(0, 4, 8), jnp.int32)}
    state, metrics = step(state, batch)
    assert np.isfinite(float(metrics["loss"]))
  after = jax.tree.map(np.asarray, {"params": state.params, "stats": state.model_state})
  return before, after


def _same(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_frozen_backbone_unchanged():
  before, after = _steps(frozen=True)
  assert _same(before["params"]["backbone"], after["params"]["backbone"])
  assert _same(before["stats"]["backbone"], after["stats"]["backbone"])
  assert not _same(before["params"]["head"], after["params"]["head"])


def test_full_finetuning_moves_backbone():
  before, after = _steps(frozen=False)
  assert not _same(before["params"]["backbone"], after["params"]["backbone"])
  assert not _same(before["stats"]["backbone"], after["stats"]["backbone"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp("cls")
  c = shrink(load_config("classifier"), steps=4, demo_dir=str(root / "data"))
  workdir = str(root / "run")
  metrics = classifier.train(c, workdir)
  return c, workdir, metrics


def test_predict_csv_round_trip(trained, tmp_path):
  c, workdir, metrics = trained
  data = demo.make_demo_set(c.data.demo_dir, size=int(c.data.image_size))
  # A CSV without labels, rows in a scrambled order with string ids.
  with open(data["val_csv"]) as f:
    rows = list(csv.DictReader(f))
  order = np.random.default_rng(0).permutation(len(rows))
  in_csv = tmp_path / "in.csv"
  with open(in_csv, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "filename"])
    for k in order:
      w.writerow([f"img-{rows[k]['id']}", rows[k]["filename"]])
  out_csv = tmp_path / "out.csv"
  p = c.copy_and_resolve_references()
  p.mode = "predict"
  p.predict.csv, p.predict.image_dir, p.predict.output_csv = str(in_csv), data["val_dir"], str(out_csv)
  classifier.predict(p, workdir)
  with open(out_csv) as f:
    out = list(csv.DictReader(f))
  assert [r["id"] for r in out] == [f"img-{rows[k]['id']}" for k in order]
  assert [r["filename"] for r in out] == [rows[k]["filename"] for k in order]
  assert set(r["label"] for r in out) <= set(demo.CLASSES)
  # The predicted labels score exactly the val accuracy the training run reported.
  truth = {r["filename"]: r["label"] for r in rows}
  acc = 100.0 * np.mean([r["label"] == truth[r["filename"]] for r in out])
  np.testing.assert_allclose(acc, metrics["val_accuracy"], atol=1e-6)


def test_vocabulary_saved_with_checkpoint(trained):
  c, workdir, _ = trained
  with open(os.path.join(workdir, "vocab.json")) as f:
    assert '"circle"' in f.read()
  net, state, _ = classifier.build(c, 4, 4)
  ckpt = Checkpointer(os.path.join(workdir, "ckpt"), every=1)
  restored, extra = ckpt.restore_or(state, {})
  ckpt.close()
  assert extra["vocab"] == sorted(demo.CLASSES)
  assert int(restored.step) == 4


def test_pretrained_backbone_is_loaded(tmp_path):
  c = shrink(load_config("byol"), steps=2, demo_dir=str(tmp_path / "data"))
  c.knn.train_csv = ""
  c.knn.source = ""
  pretrain.train(c, str(tmp_path / "byol"))
  k = shrink(load_config("classifier"), demo_dir=str(tmp_path / "data"))
  k.pretrained = str(tmp_path / "byol")
  _, state, _ = classifier.build(k, 4, 4)
  from hw4_jax.ssl import backbone_io
  _, loaded = backbone_io.load(str(tmp_path / "byol"))
  np.testing.assert_array_equal(np.asarray(state.params["backbone"]["conv_init"]["kernel"]),
                                loaded["params"]["conv_init"]["kernel"])
  k.model.width = 16
  from hw4_jax.core.errors import UserError
  with pytest.raises(UserError, match="width"):
    classifier.build(k, 4, 4)


def test_predict_folder(trained, tmp_path):
  """`predict.csv=''` labels every image under `predict.image_dir` (sub-folders too) and writes
  `filename,label`, the filename relative to the folder: the same labels as the CSV route."""
  import shutil
  c, workdir, metrics = trained
  data = demo.make_demo_set(c.data.demo_dir, size=int(c.data.image_size))
  with open(data["val_csv"]) as f:
    rows = list(csv.DictReader(f))
  folder = tmp_path / "photos"
  (folder / "more").mkdir(parents=True)
  names = {}
  for i, r in enumerate(rows):
    rel = f"more/{r['filename']}" if i % 2 else r["filename"]
    shutil.copy(os.path.join(data["val_dir"], r["filename"]), folder / rel)
    names[rel] = r["label"]
  p = c.copy_and_resolve_references()
  p.mode = "predict"
  p.predict.csv, p.predict.image_dir = "", str(folder)
  p.predict.output_csv = str(tmp_path / "out.csv")
  classifier.predict(p, workdir)
  with open(tmp_path / "out.csv") as f:
    assert f.readline().strip() == "filename,label"
    f.seek(0)
    out = list(csv.DictReader(f))
  assert sorted(r["filename"] for r in out) == sorted(names)
  acc = 100.0 * np.mean([r["label"] == names[r["filename"]] for r in out])
  np.testing.assert_allclose(acc, metrics["val_accuracy"], atol=1e-6)
