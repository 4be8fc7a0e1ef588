"""Run launch/local_multiprocess.sh from tests, and find any process it left behind.

Every process a test starts carries a unique `HW4_TEST_TOKEN` in its environment (children inherit
it), so "no orphan" is checked by scanning /proc for that token after the launcher returned.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "launch" / "local_multiprocess.sh"


def env_for(devices: int = 1, token: str | None = None, **extra: str) -> dict:
  """The environment of a launched job: this interpreter as `python`, CPU, a fresh token."""
  env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_", "SLURM_", "TPU_"))}
  env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
  env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
  env["DEVICES_PER_PROCESS"] = str(devices)
  env["HW4_TEST_TOKEN"] = token or uuid.uuid4().hex
  env.update(extra)
  return env


@dataclasses.dataclass
class Result:
  returncode: int
  stdout: str
  stderr: str
  seconds: float
  token: str

  def lines(self, process: int) -> list[str]:
    """Output lines of process `process` (both streams), without the [pI] prefix."""
    tag = f"[p{process}] "
    return [l[len(tag):] for l in (self.stdout + self.stderr).splitlines() if l.startswith(tag)]

  def describe(self) -> str:
    return (f"exit {self.returncode} after {self.seconds:.1f}s\n--- stdout\n{self.stdout[-4000:]}\n"
            f"--- stderr\n{self.stderr[-8000:]}")


def run(num_processes: int, *args: str, devices: int = 1, module: str | None = None,
        timeout: float = 600, **extra_env: str) -> Result:
  """`local_multiprocess.sh NUM_PROCESSES ARGS` (LAUNCH_MODULE=module), waited for."""
  env = env_for(devices, **extra_env)
  if module:
    env["LAUNCH_MODULE"] = module
  start = time.monotonic()
  proc = subprocess.run(["bash", str(LAUNCHER), str(num_processes), *args], capture_output=True,
                        text=True, env=env, cwd=ROOT, timeout=timeout)
  return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start,
                env["HW4_TEST_TOKEN"])


def processes_with_token(token: str) -> list[int]:
  """Live processes whose environment holds HW4_TEST_TOKEN=token (Linux /proc)."""
  needle = f"HW4_TEST_TOKEN={token}".encode()
  found = []
  for entry in pathlib.Path("/proc").iterdir():
    if not entry.name.isdigit():
      continue
    try:
      environ = (entry / "environ").read_bytes()
      state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
      continue
    if needle in environ.split(b"\0") and state != "Z":
      found.append(int(entry.name))
  return found


def assert_no_leftovers(token: str, wait_s: float = 5.0) -> None:
  """No process of this launch is alive (allowing `wait_s` for ones on their way out)."""
  deadline = time.monotonic() + wait_s
  while (left := processes_with_token(token)) and time.monotonic() < deadline:
    time.sleep(0.1)
  assert not left, f"processes left behind: {left}"
