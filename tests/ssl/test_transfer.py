"""A short demo sweep: both pre-trainings, settings A-E, the table, the JSON and the plot."""

import json
import os

from hw4_jax.ssl import transfer
from tests.ssl.tiny import load_config, shrink


def test_demo_sweep(tmp_path):
  c = load_config("transfer")
  data = str(tmp_path / "data")
  shrink(c.byol, steps=2, demo_dir=data)
  shrink(c.supervised, steps=2, demo_dir=data)
  shrink(c.classifier, steps=2, demo_dir=data)
  c.byol.knn.source = c.supervised.knn.source = ""   # no monitor: this test is the sweep's plumbing
  results = transfer.run(c, str(tmp_path / "sweep"))
  assert sorted(results) == list("ABCDE")
  with open(tmp_path / "sweep" / "results.json") as f:
    assert json.load(f) == results
  md = (tmp_path / "sweep" / "results.md").read_text()
  assert md.startswith("| Setting | Pre-training | Fine-tuning | Validation Acc % |")
  assert "| E | BYOL (SSL) | Frozen backbone |" in md
  assert os.path.getsize(tmp_path / "sweep" / "val_accuracy.png") > 1000
  with open(tmp_path / "sweep" / "D" / "metrics.json") as f:
    d = json.load(f)
  assert d["freeze_backbone"] and d["pretrained"].endswith("pretrain_supervised")
  # A finished sweep is not re-run: a second call only re-reads the settings' metrics.
  again = transfer.run(c, str(tmp_path / "sweep"))
  assert again == results
