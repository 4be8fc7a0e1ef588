"""Without the optional `viewer` extra, mode=view and view.during_train end in one error line that
names it (viser is hidden from the import system here)."""

import subprocess
import sys

import pytest

from tests.helpers import ROOT, subprocess_env

HIDE_VISER = ("import sys, runpy; sys.modules['viser'] = None; sys.argv[0] = 'hw4_jax.main'; "
              "runpy.run_module('hw4_jax.main', run_name='__main__')")


@pytest.mark.parametrize("override", ["--config.mode=view", "--config.view.during_train=True"])
def test_missing_extra_is_one_line(tmp_path, override):
  proc = subprocess.run([sys.executable, "-c", HIDE_VISER, "--config=configs/dvgo.py:demo",
                         f"--workdir={tmp_path / 'run'}", override], capture_output=True,
                        text=True, cwd=ROOT, env=subprocess_env(1), timeout=300)
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
  assert lines[0].startswith("error: ") and "pip install -e '.[viewer]'" in lines[0]
  assert not (tmp_path / "run").exists()   # the run created nothing
