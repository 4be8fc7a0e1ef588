"""The core stack end to end on a small model: 4 devices = 1 device, and exact resume."""

import numpy as np

from tests.helpers import run_module


def _train(workdir, steps, stop_after=None, devices=1):
  run_module("tests.core.toy_train", str(workdir), str(steps),
             *([str(stop_after)] if stop_after else []), devices=devices)
  return np.load(workdir / "params.npy")


def test_four_devices_match_one_device(tmp_path):
  one = _train(tmp_path / "one", 20, devices=1)
  four = _train(tmp_path / "four", 20, devices=4)
  assert one.shape == four.shape
  np.testing.assert_allclose(four, one, atol=1e-5, rtol=0)


def test_resume_in_a_new_process_is_exact(tmp_path):
  straight = _train(tmp_path / "straight", 10)
  _train(tmp_path / "resumed", 10, stop_after=5)
  assert sorted(p.name for p in (tmp_path / "resumed" / "ckpt").iterdir() if p.name.isdigit()) == ["5"]
  resumed = _train(tmp_path / "resumed", 10)
  np.testing.assert_array_equal(resumed, straight)


def test_logs_are_tensorboard_readable(tmp_path):
  _train(tmp_path / "run", 10)
  from tensorboard.backend.event_processing import event_accumulator
  acc = event_accumulator.EventAccumulator(str(tmp_path / "run" / "tensorboard"))
  acc.Reload()
  steps = [e.step for e in acc.Scalars("toy/loss")]
  assert steps == [5, 10]
  import json
  lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [5, 10] and all(np.isfinite(l["loss"]) for l in lines)
