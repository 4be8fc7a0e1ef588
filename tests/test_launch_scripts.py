"""The launch scripts: syntax (bash -n), shellcheck, usage (-h), argument checks, and the commands
they compose, run against stand-ins for srun/scontrol/sbatch/gcloud and for hw4_jax.main."""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import shutil
import stat
import subprocess
import sys
import time

import pytest

from tests.multihost import launcher

ROOT = launcher.ROOT
SCRIPTS = sorted(p for p in (ROOT / "launch").iterdir() if p.suffix in (".sh", ".sbatch"))
NAMES = {"local_multiprocess.sh", "slurm_gpu.sbatch", "sweep_scenes.sh", "tpu_vm.sh"}


def _run(script, *args, env=None, timeout=60):
  return subprocess.run(["bash", str(ROOT / "launch" / script), *map(str, args)], capture_output=True,
                        text=True, env=env or launcher.env_for(), cwd=ROOT, timeout=timeout)


def _stub(bin_dir: pathlib.Path, name: str, body: str) -> None:
  path = bin_dir / name
  path.write_text("#!/usr/bin/env bash\n" + body)
  path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _echo_python(bin_dir: pathlib.Path) -> str:
  """A `python` that runs tests.multihost.echo_env whatever module it is asked for."""
  _stub(bin_dir, "fakepython", f'shift 2\nexec {shlex.quote(sys.executable)} -m tests.multihost.echo_env "$@"\n')
  return str(bin_dir / "fakepython")


def test_all_scripts_exist():
  assert {p.name for p in SCRIPTS} == NAMES
  for p in SCRIPTS:
    assert os.access(p, os.X_OK), f"{p} is not executable"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
  proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
  if shutil.which("shellcheck") is None:
    pytest.skip("shellcheck is not installed (apt-get install shellcheck); CI installs it")
  proc = subprocess.run(["shellcheck", "--shell=bash", str(script)], capture_output=True, text=True)
  assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", sorted(NAMES))
def test_usage_with_h_and_without_arguments(script):
  proc = _run(script, "-h")
  assert proc.returncode == 0 and proc.stdout.startswith("usage:"), proc.stdout + proc.stderr
  assert "--config" in proc.stdout and "Example" in proc.stdout
  proc = _run(script)
  assert proc.returncode == 2 and "usage:" in proc.stderr and not proc.stdout


@pytest.mark.parametrize("script,args,message", [
    ("local_multiprocess.sh", ["two"], "NUM_PROCESSES must be an integer >= 1, got 'two'"),
    ("local_multiprocess.sh", ["0"], "NUM_PROCESSES must be an integer >= 1"),
    ("local_multiprocess.sh", ["2", "--process_id=1"], "sets the coordinator"),
    ("slurm_gpu.sbatch", ["--workdir=w"], "missing --config"),
    ("slurm_gpu.sbatch", ["--config=configs/byol.py"], "missing --workdir"),
    ("slurm_gpu.sbatch", ["--config=c.py", "--workdir=w"], "not inside a SLURM job"),
    ("tpu_vm.sh", ["launch", "hw4", "us-central2-b"], "unknown command 'launch'"),
    ("tpu_vm.sh", ["create", "hw4"], "create needs NAME and ZONE"),
    ("tpu_vm.sh", ["create", "hw4", "us-central2-b"], "create needs NAME ZONE TYPE"),
    ("tpu_vm.sh", ["create", "HW4", "us-central2-b", "v4-8"], "NAME 'HW4' must be lower-case"),
    ("tpu_vm.sh", ["create", "hw4", "central", "v4-8"], "ZONE 'central' does not look like a zone"),
    ("tpu_vm.sh", ["create", "hw4", "us-central2-b", "tpu8"], "TYPE 'tpu8' does not look like"),
    ("tpu_vm.sh", ["run", "hw4", "us-central2-b"], "run needs hw4_jax.main arguments"),
    ("sweep_scenes.sh", ["out"], "usage:"),
    ("sweep_scenes.sh", ["out", "/nonexistent/scene"], "/nonexistent/scene: no such directory"),
    ("sweep_scenes.sh", ["out", "launch"], "neither a scene"),
])
def test_bad_arguments_are_one_clear_error(script, args, message):
  env = launcher.env_for(GCLOUD="true")  # tpu_vm.sh checks its arguments before calling gcloud
  proc = _run(script, *args, env=env)
  assert proc.returncode == 2, proc.stdout + proc.stderr
  assert message in proc.stderr and not proc.stdout


# ---- local_multiprocess.sh ------------------------------------------------------------------------

def test_local_multiprocess_environment_prefixes_and_arguments():
  result = launcher.run(3, "--config=configs/x.py", "--config.name=a b", "--workdir", "w", devices=2,
                        module="tests.multihost.echo_env")
  assert result.returncode == 0, result.describe()
  seen = [json.loads(result.lines(i)[0]) for i in range(3)]
  coordinator = seen[0]["env"]["JAX_COORDINATOR_ADDRESS"]
  assert coordinator.startswith("127.0.0.1:")
  for i, s in enumerate(seen):
    assert s["argv"] == ["--config=configs/x.py", "--config.name=a b", "--workdir", "w"]
    assert s["env"]["JAX_PROCESS_ID"] == str(i) and s["env"]["JAX_NUM_PROCESSES"] == "3"
    assert s["env"]["JAX_COORDINATOR_ADDRESS"] == coordinator
    assert s["env"]["JAX_PLATFORMS"] == "cpu"
    assert s["env"]["XLA_FLAGS"].endswith("--xla_force_host_platform_device_count=2")
    assert s["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
  launcher.assert_no_leftovers(result.token)


def test_local_multiprocess_gpus_per_process_and_port():
  result = launcher.run(2, devices=1, module="tests.multihost.echo_env", GPUS_PER_PROCESS="2",
                        PORT="23456", JAX_PLATFORMS="cuda")
  assert result.returncode == 0, result.describe()
  seen = [json.loads(result.lines(i)[0])["env"] for i in range(2)]
  assert [s["CUDA_VISIBLE_DEVICES"] for s in seen] == ["0,1", "2,3"]
  assert {s["JAX_COORDINATOR_ADDRESS"] for s in seen} == {"127.0.0.1:23456"}
  assert {s["JAX_PLATFORMS"] for s in seen} == {"cuda"} and seen[0]["XLA_FLAGS"] is None


def test_local_multiprocess_failure_stops_the_others_and_returns_its_status():
  """Process 1 exits 3 at once while process 0 would sleep for 10 minutes: stopped, exit 3."""
  result = launcher.run(2, module="tests.multihost.echo_env", ECHO_SLEEP_0="600", ECHO_EXIT_1="3",
                        FAIL_WAIT_S="0", KILL_GRACE_S="2")
  assert result.returncode == 3, result.describe()
  assert result.seconds < 30
  assert "process 1 exited with status 3; stopping the others" in result.stderr
  launcher.assert_no_leftovers(result.token)


def test_local_multiprocess_waits_for_all_and_succeeds():
  result = launcher.run(2, module="tests.multihost.echo_env", ECHO_SLEEP_0="2")
  assert result.returncode == 0 and result.seconds >= 2, result.describe()


# ---- slurm_gpu.sbatch -----------------------------------------------------------------------------

@pytest.mark.parametrize("per_node", [1, 2])
def test_slurm_script_starts_one_process_per_task(tmp_path, per_node):
  """2 nodes x 2 GPUs, one process per node or per GPU; a fake srun runs the tasks here."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _stub(bin_dir, "scontrol", '[[ "$1 $2" == "show hostnames" ]] && printf "gpu-a\\ngpu-b\\n"\n')
  _stub(bin_dir, "srun", f"""
echo "$@" > {tmp_path}/srun_args
while [[ "$1" == --* ]]; do shift; done
for ((i = 0; i < SLURM_NTASKS; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$((i % {per_node})) "$@" || exit $?
done
""")
  env = launcher.env_for(
      PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHON=_echo_python(bin_dir),
      SLURM_JOB_ID="4242", SLURM_JOB_NODELIST="gpu-[a-b]", SLURM_NNODES="2",
      SLURM_NTASKS=str(2 * per_node), SLURM_NTASKS_PER_NODE=f"{per_node}(x2)",
      SLURM_SUBMIT_DIR=str(ROOT), CUDA_VISIBLE_DEVICES="0,1")
  proc = _run("slurm_gpu.sbatch", "--config=configs/byol.py", "--workdir=/shared/w",
              "--config.name=a b", env=env)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert "--kill-on-bad-exit=1" in (tmp_path / "srun_args").read_text()
  seen = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
  assert len(seen) == 2 * per_node
  for i, s in enumerate(seen):
    assert s["argv"] == ["--config=configs/byol.py", "--workdir=/shared/w", "--config.name=a b"]
    assert s["env"]["JAX_PROCESS_ID"] == str(i)
    assert s["env"]["JAX_NUM_PROCESSES"] == str(2 * per_node)
    assert s["env"]["JAX_COORDINATOR_ADDRESS"] == f"gpu-a:{20000 + 4242}"
    assert s["env"]["CUDA_VISIBLE_DEVICES"] == ("0,1" if per_node == 1 else str(i % 2))


# ---- tpu_vm.sh ------------------------------------------------------------------------------------

def _gcloud_calls(tmp_path, *args, **env):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir(exist_ok=True)
  log = tmp_path / "gcloud.jsonl"
  _stub(bin_dir, "gcloud", f'{shlex.quote(sys.executable)} -c "import json, sys; '
                           f'print(json.dumps(sys.argv[1:]))" "$@" >> {log}\n')
  proc = _run("tpu_vm.sh", *args, env=launcher.env_for(GCLOUD=str(bin_dir / "gcloud"), **env))
  assert proc.returncode == 0, proc.stdout + proc.stderr
  calls = [json.loads(l) for l in log.read_text().splitlines()]
  log.unlink()
  return calls


def test_tpu_vm_commands(tmp_path):
  tpu = ["compute", "tpus", "tpu-vm"]
  assert _gcloud_calls(tmp_path, "create", "hw4", "us-central2-b", "v4-16", SPOT="1",
                       PROJECT="proj") == [
      tpu + ["create", "hw4", "--zone=us-central2-b", "--project=proj", "--accelerator-type=v4-16",
             "--version=tpu-ubuntu2204-base", "--spot"]]
  [scp, ssh] = _gcloud_calls(tmp_path, "setup", "hw4", "us-central2-b")
  assert scp[:4] == tpu + ["scp"] and scp[5:] == ["hw4:hw4-jax.tgz", "--zone=us-central2-b",
                                                  "--worker=all"]
  assert ssh[:5] == tpu + ["ssh", "hw4"] and "--worker=all" in ssh and "pip install" in ssh[-1]
  args = ["--config=configs/byol.py", "--workdir=/mnt/shared/byol", "--config.name=it's a b"]
  [run] = _gcloud_calls(tmp_path, "run", "hw4", "us-central2-b", *args)
  assert run[:5] == tpu + ["ssh", "hw4"] and "--worker=all" in run
  command = run[-1].split("--command=", 1)[1]
  assert "HW4_DISTRIBUTED=1" in command and "python3 -m hw4_jax.main" in command
  remote = command.split("python3 -m hw4_jax.main ", 1)[1]  # what each worker's shell will parse
  parsed = subprocess.run(["bash", "-c", f'printf "%s\\n" {remote}'], capture_output=True, text=True)
  assert parsed.stdout.splitlines() == args
  assert _gcloud_calls(tmp_path, "copy", "hw4", "us-central2-b", "/mnt/shared/byol",
                       tmp_path / "out") == [
      tpu + ["scp", "--recurse", "hw4:/mnt/shared/byol", str(tmp_path / "out"),
             "--zone=us-central2-b", "--worker=0"]]
  assert _gcloud_calls(tmp_path, "delete", "hw4", "us-central2-b") == [
      tpu + ["delete", "hw4", "--zone=us-central2-b", "--quiet"]]


# ---- sweep_scenes.sh ------------------------------------------------------------------------------

def test_sweep_submits_one_array_task_per_scene(tmp_path):
  scenes = tmp_path / "nerf_synthetic"
  for name in ("chair", "lego"):
    (scenes / name).mkdir(parents=True)
    (scenes / name / "transforms_train.json").write_text("{}")
  (scenes / "README").mkdir()
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _stub(bin_dir, "sbatch", f'printf "%s\\n" "$@" > {tmp_path}/sbatch_args\necho "Submitted batch job 7"\n')
  env = launcher.env_for(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", MAX_PARALLEL="1",
                         SWEEP_SBATCH_ARGS="--partition=gpu --time=1:00:00")
  out = tmp_path / "out"
  proc = _run("sweep_scenes.sh", out, scenes, "--config.fine.num_iters=10", env=env)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  sbatch = (tmp_path / "sbatch_args").read_text().splitlines()
  assert "--array=0-1%1" in sbatch and "--partition=gpu" in sbatch and "--gpus=1" in sbatch
  script_at = next(i for i, a in enumerate(sbatch) if a.endswith("sweep_scenes.sh"))
  task_args = sbatch[script_at + 1:]
  assert task_args == ["--sweep-task", str(out / "scenes.tsv"), "--config=configs/dvgo.py",
                       "--config.fine.num_iters=10"]
  # Array task 1 (as SLURM would run it): the second scene, into its own workdir.
  task_env = launcher.env_for(PYTHON=_echo_python(bin_dir), SLURM_ARRAY_TASK_ID="1",
                              SLURM_SUBMIT_DIR=str(ROOT))
  proc = _run("sweep_scenes.sh", *task_args, env=task_env)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  seen = json.loads(proc.stdout.splitlines()[-1])
  assert seen["argv"] == ["--config=configs/dvgo.py", "--config.fine.num_iters=10",
                          f"--config.data.scene_dir={scenes / 'lego'}", f"--workdir={out / 'lego'}"]


def test_sweep_dry_run_writes_nothing(tmp_path):
  (tmp_path / "s" / "lego").mkdir(parents=True)
  (tmp_path / "s" / "lego" / "transforms_train.json").write_text("{}")
  proc = _run("sweep_scenes.sh", "-n", tmp_path / "out", tmp_path / "s" / "lego",
              "--config=configs/dvgo.py:cpu")
  assert proc.returncode == 0, proc.stderr
  assert "sbatch" in proc.stdout and "--config=configs/dvgo.py:cpu" in proc.stdout
  assert "--config=configs/dvgo.py " not in proc.stdout  # the user's --config replaces the default
  assert not (tmp_path / "out").exists()
