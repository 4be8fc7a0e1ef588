"""Task registry and the run wrapper: dispatch on `config.task` / `config.mode`, report bad input.

Each task module defines `MODES = {mode: fn(config, workdir)}`. Modules are imported lazily so that
`--config=configs/dvgo.py` never imports the ResNet code and vice versa.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys

import ml_collections

from hw4_jax.core.errors import UserError

TASKS = {
    "dvgo": "hw4_jax.nerf.train",
    "dvgo_compare": "hw4_jax.nerf.compare",
    "byol": "hw4_jax.ssl.pretrain",
    "supervised": "hw4_jax.ssl.pretrain",
    "classifier": "hw4_jax.ssl.classifier",
    "transfer": "hw4_jax.ssl.transfer",
}


def resolve(task: str, mode: str):
  """The function for (task, mode), or a UserError that lists the valid names."""
  if task not in TASKS:
    raise UserError(f"unknown task '{task}'; valid tasks: {', '.join(TASKS)}")
  modes = importlib.import_module(TASKS[task]).MODES
  if mode not in modes:
    raise UserError(f"unknown mode '{mode}' for task '{task}'; valid modes: {', '.join(modes)}")
  return modes[mode]


def config_file_arg(argv: list[str]) -> str | None:
  """The path part of `--config=PATH[:preset]` (or `--config PATH`), if given."""
  for i, arg in enumerate(argv):
    if arg.startswith(("--config=", "-config=")):
      value = arg.split("=", 1)[1]
    elif arg in ("--config", "-config") and i + 1 < len(argv):
      value = argv[i + 1]
    else:
      continue
    return value.split(":", 1)[0]
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing that reports a bad flag, preset or override as one line, not a traceback.

  The config file's folder goes first on `sys.path`, so config files import their siblings
  (`import common`) wherever they live (docs/architecture.md)."""
  from absl import flags
  path = config_file_arg(argv)
  if path:
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
      sys.path.insert(0, folder)
  try:
    return flags.FLAGS(argv)
  except flags.Error as err:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    message = lines[-1] if "Traceback" in str(err) else lines[0]
    message = re.sub(r"^(ValueError|TypeError|KeyError|AttributeError): ", "", message)
    flag = re.match(r"flag (--[^=\s]+)", lines[0])
    message = f"{flag.group(1) + ': ' if flag else ''}{message}"
  except (AttributeError, KeyError) as err:  # an override of a key the config does not have
    key = re.search(r"'([^']+)'", str(err))
    message = f"unknown config key '{key.group(1) if key else err}' in a --config.* override"
  except (TypeError, ValueError) as err:
    message = " ".join(str(err).split())
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


def run(config: ml_collections.ConfigDict, workdir: str | None) -> int:
  """Runs one job; bad input ends in one `error:` line, exit status 2, and no new workdir left.

  In a multi-process job a failing process ends the whole job at once (`distributed.abort`): the
  others are stopped with the same status instead of waiting in a collective that never completes.
  """
  import jax
  from hw4_jax.core import distributed, interrupt
  existed = bool(workdir) and os.path.exists(workdir)
  multi = jax.process_count() > 1

  def remove_new_workdir(status: int = 2) -> None:  # only for bad input, and only process 0 deletes
    if status == 2 and not existed and workdir and os.path.exists(workdir) and jax.process_index() == 0:
      shutil.rmtree(workdir, ignore_errors=True)

  if multi:
    distributed.on_abort(remove_new_workdir)
  interrupt.install()
  try:
    if config is None:
      raise UserError("no --config given (e.g. --config=configs/dvgo.py:demo)")
    if type(config).__name__ == "_ErrorConfig":  # config_flags defers a bad config path to here
      detail = str(object.__getattribute__(config, "_error")).strip().splitlines()
      raise UserError(f"cannot read the config file: {detail[-1].strip() if detail else ''}")
    if not workdir:
      raise UserError("no --workdir given")
    fn = resolve(config.get("task", ""), config.get("mode", "train"))
    fn(config, workdir)
  except interrupt.Interrupted as stop:
    print(f"[{config.get('task', '')}] {stop.line()}", flush=True)
    return stop.status
  except UserError as err:
    print(f"error: {err}", file=sys.stderr, flush=True)
    if multi:
      distributed.abort(str(err), 2)  # does not return
    remove_new_workdir()
    return 2
  except Exception as err:  # a crash: the traceback, then the job ends (the others stop too)
    if not multi:
      raise
    distributed.follow_other_failure()  # e.g. a collective broken because another process failed
    import traceback
    traceback.print_exc()
    distributed.abort(f"{type(err).__name__}: {err}", 1)
  return 0
