"""Run Python in a fresh process with N simulated CPU devices (device count is fixed at JAX start)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")


def config_module(name: str):
  """A file of configs/ as a module, imported by name (configs/ goes first on sys.path, as
  `hw4_jax.main` does for the folder of its --config file)."""
  if CONFIGS not in sys.path:
    sys.path.insert(0, CONFIGS)
  return importlib.import_module(name)


def load_config(name: str, preset: str = "default"):
  return config_module(name).get_config(preset)


def subprocess_env(devices: int = 1, **extra: str) -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
  env.update(extra)
  return env


def run_python(code: str, devices: int = 1, timeout: float = 600, **extra_env: str) -> str:
  """Runs `code` with `devices` CPU devices; returns stdout, raises with stderr on failure."""
  proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                        env=subprocess_env(devices, **extra_env), cwd=ROOT, timeout=timeout)
  if proc.returncode != 0:
    raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
  return proc.stdout


def run_module(module: str, *args: str, devices: int = 1, timeout: float = 600) -> str:
  """`python -m MODULE ARGS` with `devices` CPU devices; returns stdout, raises on failure."""
  proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                        env=subprocess_env(devices), cwd=ROOT, timeout=timeout)
  if proc.returncode != 0:
    raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
  return proc.stdout


def run_main(*args: str, devices: int = 1, timeout: float = 900, **extra_env: str):
  """`python -m hw4_jax.main ARGS` -> CompletedProcess (not checked)."""
  return subprocess.run([sys.executable, "-m", "hw4_jax.main", *args], capture_output=True, text=True,
                        env=subprocess_env(devices, **extra_env), cwd=ROOT, timeout=timeout)


def assert_grids_match(actual, desired, name: str, atol: float = 1e-5, outlier_frac: float = 5e-3,
                       outlier_atol: float = 1e-2) -> None:
  """DVGO grids trained with different shardings: equal to `atol` except a few voxels.

  Sharding the rays changes the order in which float32 gradient contributions are summed. Where a
  voxel's contributions nearly cancel, that reordering noise is a large part of its gradient, and
  Adam (which divides by the gradient's own scale, lr 0.1) turns it into a visible update (measured
  after 20 + 30 demo steps on 4 devices: 104, and since rays take per-image intrinsics 1,720, of
  754,392 k0 values off by up to 0.005; the PSNR equal to 1e-6). So at most
  `outlier_frac` of the elements (and at least one, for small arrays such as a 64-wide MLP bias:
  CI saw one off by 1.8e-5) may differ by more than `atol`, none by more than `outlier_atol`
  (a tenth of one full Adam step); the rendered metrics are compared separately.
  """
  import numpy as np
  diff = np.abs(np.asarray(actual, np.float64) - np.asarray(desired, np.float64))
  off = diff > atol
  assert off.sum() <= max(1, outlier_frac * diff.size) and diff.max() <= outlier_atol, (
      f"{name}: {int(off.sum())} of {diff.size} elements differ by > {atol} "
      f"(max {diff.max():.3g}; allowed: {outlier_frac:.1%} of them, each <= {outlier_atol})")


def tiny_ssl_args(config: str, workdir, data, steps: int = 3) -> list[str]:
  """`configs/<config>.py:demo` made tiny for the CLI (as tests/ssl/tiny.py): a width-8 ResNet-18
  at 64 px, batch 8, `steps` steps, a line and a kNN / validation pass every step or two."""
  args = [f"--config=configs/{config}.py:demo", f"--workdir={workdir}", "--config.model.width=8",
          "--config.augment.crop_size=64", "--config.data.image_size=64",
          f"--config.data.demo_dir={data}", "--config.train.batch_size=8",
          f"--config.train.num_steps={steps}", "--config.log_every=1", "--config.checkpoint_every=2"]
  if config in ("byol", "supervised"):
    args += ["--config.knn.image_size=64", f"--config.knn.demo_dir={data}",
             "--config.knn.batch_size=32"]
  if config == "byol":
    args += ["--config.byol.hidden_dim=32", "--config.byol.proj_dim=16"]
  if config == "classifier":
    args += ["--config.head.hidden=16", "--config.train.eval_every=2",
             "--config.train.eval_batch_size=32"]
  return args


def tiny_dvgo_args(workdir, coarse: int = 10, fine: int = 12) -> list[str]:
  """`configs/dvgo.py:demo` made tiny: `coarse` + `fine` steps, one scaling point halfway."""
  return ["--config=configs/dvgo.py:demo", f"--workdir={workdir}",
          f"--config.coarse.num_iters={coarse}", "--config.coarse.alpha_init=1e-2",
          f"--config.fine.num_iters={fine}", f"--config.fine.pg_scale=({fine // 2},)",
          "--config.coarse.num_voxels=32768", "--config.coarse.num_voxels_base=32768",
          "--config.fine.num_voxels=64000", "--config.fine.num_voxels_base=64000",
          "--config.coarse.batch_size=512", "--config.fine.batch_size=512",
          "--config.checkpoint_every=5", "--config.log_every=5", "--config.eval.lpips=False"]


def run_main_until(pattern: str, *args: str, signum: int, devices: int = 1, timeout: float = 600,
                   **extra_env: str) -> tuple[int, str, str]:
  """Starts `python -m hw4_jax.main ARGS` in its own process group (as a shell job), sends it
  `signum` once a stdout line matches the regex `pattern`, and returns (status, stdout, stderr)."""
  import re
  import signal as signal_lib
  import tempfile
  err = tempfile.TemporaryFile("w+")
  old = signal_lib.signal(signal_lib.SIGINT, signal_lib.SIG_DFL)  # the child starts with the default
  try:
    proc = subprocess.Popen([sys.executable, "-m", "hw4_jax.main", *args], stdout=subprocess.PIPE,
                            stderr=err, text=True, env=subprocess_env(devices, **extra_env),
                            cwd=ROOT, start_new_session=True)
  finally:
    signal_lib.signal(signal_lib.SIGINT, old)
  out, sent = [], False
  try:
    for line in proc.stdout:
      out.append(line)
      if not sent and re.search(pattern, line):
        os.kill(proc.pid, signum)
        sent = True
    status = proc.wait(timeout=timeout)
  finally:
    if proc.poll() is None:
      proc.kill()
  err.seek(0)
  assert sent, f"never saw {pattern!r}:\n{''.join(out)[-3000:]}\n{err.read()[-3000:]}"
  return status, "".join(out), err.read()
