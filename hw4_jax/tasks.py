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


# The presets of the project's config files (tests/core/test_cli.py checks this list against them).
PRESETS = {"configs/dvgo.py": ("default", "setting_a", "cpu", "cpu_fast", "demo", "compare"),
           "configs/byol.py": ("default", "cpu", "demo", "lars"),
           "configs/supervised.py": ("default", "cpu", "demo"),
           "configs/classifier.py": ("default", "cpu", "demo"),
           "configs/transfer.py": ("default", "cpu", "demo")}


HELP = {"-h", "--help", "--helpshort", "--helpfull", "-?"}


def usage() -> str:
  """`--help`'s text: the command, every task with its modes, the config files with their presets."""
  lines = ["python -m hw4_jax.main --config=CONFIG.py[:PRESET] --workdir=DIR [--config.KEY=VALUE ...]",
           "", "tasks (config.task) and their modes (config.mode, default train):"]
  for task, module in TASKS.items():
    modes = ", ".join(importlib.import_module(module).MODES)
    lines.append(f"  {task:<12} {modes}")
  lines += ["", "config files and their presets (default when omitted):"]
  lines += [f"  {path:<24} {', '.join(names)}" for path, names in PRESETS.items()]
  lines += ["", "Every key: docs/configs.md. Exit status: 0 done, 2 bad input, 75 preempted "
            "(config.preempt_at), 130 / 143 stopped by SIGINT / SIGTERM (re-run to resume)."]
  return "\n".join(lines)


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


def _unknown_key(text: str, argv: list[str]) -> str:
  """ml_collections' KeyError text (`'num_iter'` + a "Did you mean" line, escaped) -> one line that
  names the whole override and keeps the suggestion."""
  text = text.replace("\\n", " ").replace("\\'", "'").replace("\n", " ")
  leaf = re.search(r"'([A-Za-z0-9_]+)'", text)
  hint = re.search(r'Did you mean "([^"]+)"', text)
  leaf = leaf.group(1) if leaf else text
  full = next((a.split("=", 1)[0][len("--config."):] for a in argv
               if a.startswith("--config.") and leaf in a.split("=", 1)[0].split(".")), leaf)
  return (f"unknown config key '{full}' in a --config.* override"
          + (f"; did you mean '{hint.group(1)}'?" if hint else ""))


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
  except SystemExit as done:   # absl ends --help with status 1; asking for help is not an error
    if done.code == 1 and HELP & set(argv):
      sys.exit(0)
    raise
  except flags.Error as err:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    message = lines[-1] if "Traceback" in str(err) else lines[0]
    message = re.sub(r"^(ValueError|TypeError|KeyError|AttributeError): ", "", message)
    flag = re.match(r"flag (--[^=\s]+)", lines[0])
    message = f"{flag.group(1) + ': ' if flag else ''}{message}"
  except (AttributeError, KeyError) as err:  # an override of a key the config does not have
    message = _unknown_key(str(err), argv)
  except (TypeError, ValueError) as err:
    message = " ".join(str(err).split())
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


def _first_missing(path: str | None) -> str | None:
  """The outermost folder of `path` that does not exist yet (what creating `path` would add)."""
  if not path or os.path.exists(path):
    return None
  path = os.path.abspath(path)
  while not os.path.exists(os.path.dirname(path)):
    path = os.path.dirname(path)
  return path


def holds_checkpoint(workdir: str) -> bool:
  """Whether `workdir` (or a run inside it: a sweep's settings, a comparison's presets) holds a
  finished checkpoint."""
  from hw4_jax.core.checkpoint import latest_step
  for root, dirs, _ in os.walk(workdir):
    if root[len(workdir):].count(os.sep) > 2:
      dirs[:] = []
      continue
    if any(d.startswith("ckpt") and latest_step(os.path.join(root, d)) is not None for d in dirs):
      return True
  return False


def _check(config, workdir):
  """Everything that can be checked before any work: the config file, the task and mode, every
  key's value, the output paths and the workdir's owner (see workdir.py). Returns the mode's fn
  and the function that undoes the config.json written for this run."""
  from hw4_jax import config_rules, workdir as workdir_lib
  if config is None:
    raise UserError("no --config given (e.g. --config=configs/dvgo.py:demo)")
  if type(config).__name__ == "_ErrorConfig":  # config_flags defers a bad config path to here
    detail = str(object.__getattribute__(config, "_error")).strip().splitlines()
    raise UserError(f"cannot read the config file: {detail[-1].strip() if detail else ''}")
  if not workdir:
    raise UserError("no --workdir given")
  fn = resolve(config.get("task", ""), config.get("mode", "train"))
  config_rules.check(config)
  workdir_lib.check_outputs(config, workdir)
  return fn, workdir_lib.claim(config, workdir)


def run(config: ml_collections.ConfigDict, workdir: str | None) -> int:
  """Runs one job. Bad input ends in one `error:` line and exit status 2; a workdir is removed only
  when this run created it and it holds no checkpoint; an error after training started keeps the
  checkpoints and says how to resume. SIGTERM / SIGINT: exit 143 / 130 after saving.

  In a multi-process job a failing process ends the whole job at once (`distributed.abort`): the
  others are stopped with the same status instead of waiting in a collective that never completes.
  """
  import jax
  from hw4_jax.core import distributed, interrupt
  created = _first_missing(workdir)   # the top folder this run would create, if any
  multi = jax.process_count() > 1

  def remove_new_workdir(status: int = 2) -> None:  # only for bad input, and only process 0 deletes
    if (status == 2 and created and os.path.isdir(created) and jax.process_index() == 0
        and not holds_checkpoint(created)):
      shutil.rmtree(created, ignore_errors=True)

  if multi:
    distributed.on_abort(remove_new_workdir)
  interrupt.install()
  undo = lambda: None
  try:
    fn, undo = _check(config, workdir)
    fn(config, workdir)
    if interrupt.pending() is not None:   # it arrived after the last point that checks for it
      raise interrupt.Interrupted(interrupt.pending(), "the run had finished: everything is saved")
  except interrupt.Interrupted as stop:
    print(f"[{config.task}] {stop.line()}", flush=True)
    return stop.status
  except UserError as err:
    message = str(err)
    training = (config is not None and type(config).__name__ != "_ErrorConfig"
                and config.get("mode", "train") == "train")
    if (training and workdir and os.path.isdir(workdir) and holds_checkpoint(workdir)
        and "resume" not in message):
      message += (f" (the checkpoints in {workdir} are kept: fix this and run the same command again "
                  "to resume)")
    print(f"error: {message}", file=sys.stderr, flush=True)
    if multi:
      distributed.abort(message, 2)  # does not return
    if not holds_checkpoint(workdir or ""):
      undo()
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
