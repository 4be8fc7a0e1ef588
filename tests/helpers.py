"""Run Python in a fresh process with N simulated CPU devices (device count is fixed at JAX start)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def run_main(*args: str, devices: int = 1, timeout: float = 900, **extra_env: str):
  """`python -m hw4_jax.main ARGS` -> CompletedProcess (not checked)."""
  return subprocess.run([sys.executable, "-m", "hw4_jax.main", *args], capture_output=True, text=True,
                        env=subprocess_env(devices, **extra_env), cwd=ROOT, timeout=timeout)
