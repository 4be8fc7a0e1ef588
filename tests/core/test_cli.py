"""The CLI: presets, overrides, and one-line errors with a non-zero exit for bad names."""

import os
import shutil
import textwrap

import pytest

from tests.helpers import CONFIGS, run_main

CONFIG = textwrap.dedent("""
    import ml_collections
    import common   # a sibling of this file, as configs/ has it

    def _base():
      c = ml_collections.ConfigDict()
      c.task = "{task}"
      c.mode = "train"
      return c

    def get_config(arg=None):
      return common.choose(arg, {{"default": _base, "cpu": _base}})
    """)


def _config(tmp_path, task):
  """A config file outside the checkout that imports its sibling `common` (copied from configs/)."""
  shutil.copy(os.path.join(CONFIGS, "common.py"), tmp_path / "common.py")
  path = tmp_path / f"cfg_{task}.py"
  path.write_text(CONFIG.format(task=task))
  return str(path)


def _one_line_error(proc):
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode != 0
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
  return lines[0]


def test_unknown_task_lists_valid_tasks(tmp_path):
  line = _one_line_error(run_main(f"--config={_config(tmp_path, 'nerf')}", f"--workdir={tmp_path}/w"))
  assert "unknown task 'nerf'" in line and "dvgo" in line and "byol" in line
  assert not (tmp_path / "w").exists()


def test_unknown_preset_lists_valid_presets(tmp_path):
  line = _one_line_error(run_main(f"--config={_config(tmp_path, 'dvgo')}:fast", f"--workdir={tmp_path}/w"))
  assert "unknown preset 'fast'" in line and "default, cpu" in line


def test_unknown_override_key_and_missing_config_file(tmp_path):
  line = _one_line_error(run_main(f"--config={_config(tmp_path, 'dvgo')}", "--config.nope=1",
                                  f"--workdir={tmp_path}/w"))
  assert "unknown config key 'nope'" in line
  line = _one_line_error(run_main(f"--config={tmp_path}/absent.py", f"--workdir={tmp_path}/w"))
  assert "absent.py" in line


@pytest.mark.parametrize("task", ["dvgo", "byol"])
def test_unknown_mode_lists_valid_modes(tmp_path, task):
  line = _one_line_error(run_main(f"--config={_config(tmp_path, task)}", "--config.mode=dance",
                                  f"--workdir={tmp_path}/w"))
  assert f"unknown mode 'dance' for task '{task}'" in line and "train" in line


def test_help_lists_tasks_modes_and_the_config_files_presets():
  from hw4_jax import tasks
  from tests.helpers import config_module
  proc = run_main("--help")
  assert proc.returncode == 0
  for task in tasks.TASKS:
    assert f"  {task} " in proc.stdout
  assert "dvgo         train, eval, render, export" in proc.stdout
  for path, names in tasks.PRESETS.items():
    module = config_module(os.path.basename(path)[:-3])
    for name in names:
      assert module.get_config(name).preset == name
    with pytest.raises(ValueError, match=r"valid presets: (.*)") as info:
      module.get_config("no-such-preset")
    assert str(info.value).split("valid presets: ")[1] == ", ".join(names)   # no preset missing
    assert f"{path:<24} {', '.join(names)}" in proc.stdout
