"""A failure after training started: one `error:` line and nothing else, the checkpointer closed
before anything else (no half-written checkpoint), the checkpoints kept with a hint to resume; a
workdir the failed run created is removed only when it holds no checkpoint."""

import os

from tests.helpers import run_main, tiny_ssl_args


def _corrupt_every_image(folder):
  for name in os.listdir(folder):
    if name.endswith(".jpg"):
      with open(os.path.join(folder, name), "wb") as f:
        f.write(b"\xff\xd8 not a jpeg")


def _one_error_line(proc):
  lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.startswith("error:")]
  assert proc.returncode == 2 and len(lines) == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
  assert not [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith("error:")], (
      proc.stderr[-3000:])
  return lines[0]


def test_corrupt_images_mid_run_keep_the_checkpoints(tmp_path):
  work, data = tmp_path / "run", tmp_path / "data"
  proc = run_main(*tiny_ssl_args("byol", work, data, steps=2))
  assert proc.returncode == 0, proc.stderr[-2000:]
  _corrupt_every_image(data / "train")
  line = _one_error_line(run_main(*tiny_ssl_args("byol", work, data, steps=6)))
  assert "cannot be decoded" in line and "checkpoints in" in line and "resume" in line
  steps = sorted(os.listdir(work / "ckpt"))
  assert steps == ["2"], steps          # nothing half-written next to it


def test_a_failed_new_run_without_checkpoints_leaves_no_workdir(tmp_path):
  work, data = tmp_path / "run", tmp_path / "data"
  from hw4_jax.ssl import demo
  demo.make_demo_set(str(data), size=64)
  _corrupt_every_image(data / "train")
  line = _one_error_line(run_main(*tiny_ssl_args("byol", work, data, steps=2)))
  assert "cannot be decoded" in line
  assert not work.exists()
