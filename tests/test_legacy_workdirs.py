"""Workdirs written before the redesign (tests/data/legacy, see its README) still evaluate, render and
predict, with the scores they were trained to."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT, run_main

LEGACY = os.path.join(ROOT, "tests", "data", "legacy")


def _ok(proc):
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


def test_dvgo_model_evaluates_and_renders(tmp_path):
  from hw4_jax.nerf import demo_scene
  scene_dir = demo_scene.ensure()
  work = tmp_path / "dvgo"
  shutil.copytree(os.path.join(LEGACY, "dvgo"), work)
  args = ["--config=configs/dvgo.py:demo", f"--workdir={work}", f"--config.data.scene_dir={scene_dir}",
          "--config.eval.split=val"]   # (it was scored on val)
  _ok(run_main(*args, "--config.mode=eval", "--config.eval.lpips=False"))
  m = json.loads((work / "metrics.json").read_text())
  assert m["psnr"] == pytest.approx(12.5926, abs=1e-3) and m["ssim"] == pytest.approx(0.6422, abs=1e-3)
  cams = json.loads(open(os.path.join(scene_dir, "transforms_val.json")).read())
  cams["frames"] = cams["frames"][:2]
  (tmp_path / "cams.json").write_text(json.dumps(cams))
  _ok(run_main(*args, "--config.mode=render", f"--config.render.transforms={tmp_path / 'cams.json'}",
               f"--config.render.output_dir={tmp_path / 'out'}"))
  rendered = np.asarray(Image.open(tmp_path / "out" / "r_0.png"), np.float32)
  evaluated = np.asarray(Image.open(work / "val_renders" / "r_0.png"), np.float32)
  assert rendered.shape == (100, 100, 3) and np.abs(rendered - evaluated).max() <= 1


def test_classifier_checkpoint_predicts(tmp_path):
  from hw4_jax.ssl import demo
  work = tmp_path / "classifier"
  shutil.copytree(os.path.join(LEGACY, "classifier"), work)
  data = demo.make_demo_set(str(tmp_path / "data"), size=64)
  out = tmp_path / "pred.csv"
  _ok(run_main("--config=configs/classifier.py:demo", f"--workdir={work}", "--config.mode=predict",
               "--config.model.width=4", "--config.augment.crop_size=64",
               "--config.data.image_size=64", "--config.head.hidden=8",
               f"--config.predict.csv={data['val_csv']}", f"--config.predict.image_dir={data['val_dir']}",
               f"--config.predict.output_csv={out}"))
  with open(data["val_csv"]) as f:
    truth = {r["filename"]: r["label"] for r in csv.DictReader(f)}
  with open(out) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == len(truth) == 64
  accuracy = 100.0 * np.mean([truth[r["filename"]] == r["label"] for r in rows])
  assert accuracy == 25.0   # what the run that wrote the checkpoint measured on these images
