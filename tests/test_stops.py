"""Stops of the SSL tasks through the CLI: SIGTERM / SIGINT save a checkpoint and exit 143 / 130, a
simulated preemption exits 75, and the re-run resumes exactly (the same final weights and loss as a
run that never stopped). DVGO's are in tests/nerf/test_train.py."""

import json
import signal

import jax
import numpy as np
import pytest

from hw4_jax.ssl import backbone_io
from tests.helpers import run_main, run_main_until, tiny_ssl_args

STEPS = 5


def _ok(proc):
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


def _same_result(config, a, b):
  ma, mb = (json.loads((w / "metrics.json").read_text()) for w in (a, b))
  assert ma["steps"] == mb["steps"] == STEPS
  assert ma["final_loss"] == mb["final_loss"]
  if config == "classifier":
    assert ma["val_accuracy"] == mb["val_accuracy"]
    return
  (_, x), (_, y) = backbone_io.load(str(a)), backbone_io.load(str(b))
  for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True):
    np.testing.assert_array_equal(u, v)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """Uninterrupted runs, per task (made on first use)."""
  root, done = tmp_path_factory.mktemp("straight"), {}

  def get(config):
    if config not in done:
      work = root / config
      _ok(run_main(*tiny_ssl_args(config, work, root / "data", steps=STEPS)))
      done[config] = work
    return done[config]
  return get


@pytest.mark.parametrize("config,signum", [("supervised", signal.SIGTERM),
                                           ("classifier", signal.SIGTERM), ("byol", signal.SIGINT)])
def test_a_signal_saves_and_the_rerun_resumes_exactly(straight, tmp_path, config, signum):
  work = tmp_path / "run"
  args = tiny_ssl_args(config, work, tmp_path / "data", steps=STEPS)
  task = "byol" if config == "byol" else config
  status, out, err = run_main_until(rf"^\[{task}\] 2/{STEPS} ", *args, signum=signum)
  assert status == 128 + signum, out[-2000:] + err[-2000:]
  stop = [l for l in out.splitlines() if "stopped by" in l]
  assert len(stop) == 1 and signal.Signals(signum).name in stop[0], out[-2000:]
  saved = int(stop[0].split("checkpoint saved at step ")[1].split(";")[0])
  assert 2 <= saved < STEPS and (work / "ckpt" / str(saved)).is_dir()
  assert not (work / "metrics.json").exists()
  proc = _ok(run_main(*args))
  assert f"resumed at step {saved}" in proc.stdout
  _same_result(config, straight(config), work)


def test_preemption_then_sigterm_then_the_rest(straight, tmp_path):
  """BYOL: a simulated preemption after step 2 (exit 75), a SIGTERM after the resumed run's first
  line (exit 143), then the rest: the uninterrupted run's weights and loss."""
  work = tmp_path / "run"
  args = tiny_ssl_args("byol", work, tmp_path / "data", steps=STEPS)
  proc = run_main(*args, "--config.preempt_at=byol:2")
  assert proc.returncode == 75 and "preempted after step 2" in proc.stdout, proc.stderr[-2000:]
  status, out, err = run_main_until(r"^\[byol\] 3/", *args, signum=signal.SIGTERM)
  assert status == 143 and "resumed at step 2" in out, out[-2000:] + err[-2000:]
  proc = _ok(run_main(*args))
  assert "resumed at step" in proc.stdout
  _same_result("byol", straight("byol"), work)
