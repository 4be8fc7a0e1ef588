"""A workdir belongs to one task and one configuration: `WORKDIR/config.json` records it.

Before anything is written, a run checks the workdir it is given:
- its output paths can be written (`--workdir`, `render.output_dir`, `predict.output_csv`);
- `task` matches the workdir's (a workdir made before config.json existed is recognised by its
  files); when training resumes, every key that shapes the model, the data or the optimisation
  matches; in the other modes only the keys that build the saved model or preprocess its inputs;
- a mismatch is one error naming the workdir and the differing keys.
Then the resolved config (every override included) is written to `config.json`, atomically.
"""

from __future__ import annotations

import os

from hw4_jax import config_rules
from hw4_jax.core import files
from hw4_jax.core.errors import UserError

CONFIG_FILE = "config.json"

# Keys that never block a re-run: what to do and how to report it, cadence, and extending a run.
NEVER_BLOCK = ("mode", "preset", "render.", "eval.", "export.", "view.", "predict.", "log_every",
               "checkpoint_every", "keep_checkpoints", "time_budget_s", "preempt_at",
               "train.num_epochs", "train.num_steps", "coarse.num_iters", "fine.num_iters",
               "data.num_threads", "data.num_workers", "knn.", "probe.", "train.eval_every",
               "model.dtype",   # compute dtype only: parameters and checkpoints are float32 either way
               "train.eval_batch_size", "compare.presets", "settings")
# Outside training, only what builds the saved model or preprocesses its inputs matters.
MODEL_KEYS = {
    "dvgo": (),   # model.json holds the trained model's geometry and renderer settings
    "byol": ("model.backbone", "model.width", "augment.crop_size"),
    "supervised": ("model.backbone", "model.width", "augment.crop_size"),
    "classifier": ("model.backbone", "model.width", "head.", "augment.crop_size",
                   "data.image_size"),
}


def _matches(key: str, prefixes) -> bool:
  return any(key == p or (p.endswith(".") and key.startswith(p)) for p in prefixes)


def task_of_files(workdir: str) -> str | None:
  """The task that made a workdir without config.json (written before it existed), by its files."""
  has = lambda *names: any(os.path.exists(os.path.join(workdir, n)) for n in names)
  if has("model.npz", "ckpt_coarse", "ckpt_fine"):
    return "dvgo"
  if has("comparison.json"):
    return "dvgo_compare"
  if has("results.json", "pretrain_byol", "pretrain_supervised"):
    return "transfer"
  if has("vocab.json"):
    return "classifier"
  if has("backbone.json"):
    try:
      return files.read_json_object(os.path.join(workdir, "backbone.json"), "").get("task")
    except UserError:
      return None
  return None


def _writable_dir(path: str, what: str) -> None:
  """`path` is (or can be created as) a folder this process can write into."""
  if os.path.exists(path):
    if not os.path.isdir(path):
      raise UserError(f"{path}: {what} is a file, not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
      raise UserError(f"{path}: {what} is not writable")
    return
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise UserError(f"{path}: cannot create {what}: {parent} is a file")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise UserError(f"{path}: cannot create {what}: {parent} is not writable")


def check_outputs(config, workdir: str) -> None:
  """Every path the run will write to, checked before any work."""
  _writable_dir(workdir, "the workdir (--workdir)")
  mode = config.get("mode", "train")
  if mode == "render" and config.render.get("output_dir", ""):
    _writable_dir(config.render.output_dir, "config.render.output_dir")
  if mode == "predict" and config.predict.get("output_csv", ""):
    out = config.predict.output_csv
    if os.path.isdir(out):
      raise UserError(f"{out}: config.predict.output_csv is a folder, not a file")
    if os.path.exists(out) and not os.access(out, os.W_OK):
      raise UserError(f"{out}: config.predict.output_csv is not writable")
    _writable_dir(os.path.dirname(os.path.abspath(out)), "the folder of config.predict.output_csv")


def _saved(workdir: str) -> dict | None:
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    return None
  return config_rules.flatten(files.read_json_object(path, "this workdir's configuration"))


def _differences(task: str, mode: str, now: dict, saved: dict) -> list[str]:
  if mode == "train":
    keep = lambda key: not (_matches(key, NEVER_BLOCK) or _nested_never(key))
  else:
    keep = lambda key: _matches(key, MODEL_KEYS.get(task, ()))
  out = []
  for key in sorted(set(now) | set(saved)):
    if key == "task" or not keep(key):
      continue
    a, b = now.get(key, "<absent>"), saved.get(key, "<absent>")
    if a != b:   # (both come from JSON-able values: tuples are lists on both sides)
      out.append(f"{key} ({b!r} there, {a!r} now)")
  return out


def _nested_never(key: str) -> bool:
  """Keys of the sweep's sub-configs and the comparison's runs follow the same rules."""
  for head in ("byol.", "supervised.", "classifier."):
    if key.startswith(head) and _matches(key[len(head):], NEVER_BLOCK):
      return True
  if key.startswith("runs."):
    rest = key.split(".", 2)[-1]
    return _matches(rest, NEVER_BLOCK)
  return False


def claim(config, workdir: str):
  """Checks that `workdir` can be this run's (see the module docstring), then records config.json.

  Raises a UserError before writing anything when it cannot. Returns a function that puts the
  previous config.json back (or removes the new one): a run that then fails on bad input leaves
  an existing workdir as it found it."""
  task, mode = config.get("task", ""), config.get("mode", "train")
  now = files.jsonable(config_rules.flatten(config.to_dict()))
  path = os.path.join(workdir, CONFIG_FILE)
  saved = _saved(workdir) if os.path.isdir(workdir) else None
  if saved is None and os.path.isdir(workdir):
    other = task_of_files(workdir)
    if other is not None and other != task:
      raise UserError(f"{workdir}: this workdir holds a '{other}' run, not '{task}'; use another "
                      "--workdir")
  if saved is not None:
    if saved.get("task") != task:
      raise UserError(f"{workdir}: this workdir holds a '{saved.get('task')}' run, not '{task}'; "
                      "use another --workdir")
    diff = _differences(task, mode, now, saved)
    if diff:
      raise UserError(f"{workdir}: this workdir was made with another configuration: "
                      f"{'; '.join(diff[:6])}{' ...' if len(diff) > 6 else ''}; use the same values "
                      "or another --workdir")
  if saved is not None and mode != "train":
    return lambda: None
  before = open(path, "rb").read() if os.path.isfile(path) else None
  os.makedirs(workdir, exist_ok=True)
  files.write_json(path, files.jsonable(config.to_dict()))

  def undo() -> None:
    if not files.is_main_process():
      return
    if before is None:
      if os.path.isfile(path):
        os.remove(path)
    else:
      files.write_bytes(path, before)
  return undo
