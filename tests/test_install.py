"""A non-editable install runs the checkout's config files from outside the checkout: config files
import their siblings (`common`, other tasks' configs) and nothing reads the checkout's layout."""

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from tests.helpers import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """A fresh venv holding a built (not editable) copy of the package; its dependencies come from
  the test environment through a .pth file, so nothing is downloaded."""
  root = tmp_path_factory.mktemp("install")
  src = root / "src"   # a copy, so that the build leaves nothing in the checkout
  shutil.copytree(os.path.join(ROOT, "hw4_jax"), src / "hw4_jax",
                  ignore=shutil.ignore_patterns("__pycache__"))
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(os.path.join(ROOT, name), src / name)
  venv = root / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
  python = venv / "bin" / "python"
  site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        check=True, capture_output=True, text=True).stdout.strip()
  with open(os.path.join(site, "test_env_deps.pth"), "w") as f:
    f.write(sysconfig.get_paths()["purelib"] + "\n")
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site,
                  str(src)], check=True, cwd=root)
  where = subprocess.run([str(python), "-c", "import hw4_jax; print(hw4_jax.__file__)"], check=True,
                         capture_output=True, text=True, cwd=root).stdout.strip()
  assert where.startswith(site), where   # the installed copy, not the checkout
  return python, root


def _run(python, cwd, *args):
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run([str(python), "-m", "hw4_jax.main", *args], capture_output=True, text=True,
                        cwd=cwd, env=env, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


@pytest.mark.slow
def test_dvgo_compare_from_outside_the_checkout(installed):
  python, root = installed
  small = []
  for run in ("default", "setting_a"):
    small += [f"--config.runs.{run}.coarse.num_iters=6", f"--config.runs.{run}.fine.num_iters=6",
              f"--config.runs.{run}.coarse.alpha_init=1e-2",
              f"--config.runs.{run}.coarse.num_voxels=32768",
              f"--config.runs.{run}.coarse.num_voxels_base=32768",
              f"--config.runs.{run}.fine.num_voxels=64000",
              f"--config.runs.{run}.fine.num_voxels_base=64000",
              f"--config.runs.{run}.coarse.batch_size=512", f"--config.runs.{run}.fine.batch_size=512",
              f"--config.runs.{run}.fine.pg_scale=(3,)", f"--config.runs.{run}.eval.lpips=False",
              # the shapes of tests/nerf/test_train.py's runs, so compilations are shared
              f"--config.runs.{run}.coarse.pervoxel_count=projection",
              f"--config.runs.{run}.fine.stepsize=1.0", f"--config.runs.{run}.fine.rgbnet_width=64",
              f"--config.runs.{run}.fine.rgbnet_depth=3"]
  proc = _run(python, root, f"--config={ROOT}/configs/dvgo.py:compare", f"--workdir={root / 'cmp'}",
              "--config.data.scene_dir=", *small)
  table = (root / "cmp" / "comparison.md").read_text()
  assert "| A (setting_a) |" in table and "| B (default) |" in table, proc.stdout[-2000:]


@pytest.mark.slow
def test_transfer_demo_from_outside_the_checkout(installed):
  python, root = installed
  _run(python, root, f"--config={ROOT}/configs/transfer.py:demo", f"--workdir={root / 'sweep'}",
       "--config.settings=A", "--config.classifier.train.num_steps=2",
       "--config.classifier.model.width=8", "--config.classifier.augment.crop_size=64",
       "--config.classifier.data.image_size=64", "--config.classifier.train.batch_size=8")
  assert (root / "sweep" / "results.md").read_text().count("| A |") == 1
