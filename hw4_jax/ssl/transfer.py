"""The A-E sweep: one command pre-trains (if needed), fine-tunes five classifiers and compares them.

A: no pre-training, full fine-tuning      B: supervised pre-training, full     C: BYOL, full
D: supervised pre-training, frozen        E: BYOL pre-training, frozen
Pre-training workdirs come from `config.byol_workdir` / `config.supervised_workdir`; when empty, the
sweep runs `config.byol` / `config.supervised` first into `DIR/pretrain_byol` / `DIR/pretrain_supervised`.
Each setting is a classifier run in `DIR/<letter>` (so an interrupted sweep resumes where it stopped);
the results land in `DIR/results.json`, `DIR/results.md` and `DIR/val_accuracy.png`.
"""

from __future__ import annotations

import json
import os

from hw4_jax.core import distributed, files
from hw4_jax.core.errors import UserError

SETTINGS = {  # letter: (pre-training, frozen backbone)
    "A": ("none", False),
    "B": ("supervised", False),
    "C": ("byol", False),
    "D": ("supervised", True),
    "E": ("byol", True),
}


def _done(workdir: str) -> dict | None:
  path = os.path.join(workdir, "metrics.json")
  if os.path.isfile(path):
    with open(path) as f:
      return json.load(f)
  return None


def pretrain_dirs(config, workdir: str) -> dict:
  """{'byol': dir, 'supervised': dir}, running a pre-training for each one not given."""
  from hw4_jax.ssl import pretrain
  dirs = {}
  for kind in ("byol", "supervised"):
    given = config.get(f"{kind}_workdir", "")
    if given:
      if not os.path.isfile(os.path.join(given, "backbone.msgpack")):
        raise UserError(f"config.{kind}_workdir={given}: no backbone.msgpack (not a finished "
                        "pre-training workdir)")
      dirs[kind] = given
      continue
    dirs[kind] = os.path.join(workdir, f"pretrain_{kind}")
    if not os.path.isfile(os.path.join(dirs[kind], "backbone.msgpack")):
      pretrain.train(config[kind], dirs[kind])
      distributed.barrier(f"transfer: {kind} pre-training exported")  # process 0 wrote it
  return dirs


def check_inputs(config, needed) -> None:
  """Every data path of the parts this sweep will run, before the first of them starts."""
  from hw4_jax.ssl import images
  for kind in ("byol", "supervised"):
    if needed and not config.get(f"{kind}_workdir", ""):
      images.check_inputs(config[kind].data, f"config.{kind}.data", ("train",))
      if images.has_images(config[kind].knn):
        images.check_inputs(config[kind].knn, f"config.{kind}.knn")
  images.check_inputs(config.classifier.data, "config.classifier.data")


def setting_config(config, letter: str, dirs: dict):
  pre, frozen = SETTINGS[letter]
  c = config.classifier.copy_and_resolve_references()
  with c.unlocked():
    c.pretrained = "" if pre == "none" else dirs[pre]
    c.freeze_backbone = frozen
  return c


def table(results: dict) -> str:
  lines = ["| Setting | Pre-training | Fine-tuning | Validation Acc % |", "|---|---|---|---|"]
  for letter, (pre, frozen) in SETTINGS.items():
    if letter in results:
      name = {"none": "None", "supervised": "Supervised", "byol": "BYOL (SSL)"}[pre]
      lines.append(f"| {letter} | {name} | {'Frozen backbone' if frozen else 'Full'} | "
                   f"{results[letter]:.2f} |")
  return "\n".join(lines) + "\n"


def plot(histories: dict, path: str) -> None:
  """Validation accuracy vs training step, one line per setting."""
  if not files.is_main_process():
    return
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
  for letter, hist in histories.items():
    pre, frozen = SETTINGS[letter]
    steps, acc = zip(*hist) if hist else ((), ())
    ax.plot(steps, acc, marker="o", markersize=3,
            label=f"{letter}: {pre}, {'frozen' if frozen else 'full'}")
  ax.set_xlabel("training step")
  ax.set_ylabel("validation accuracy (%)")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  with files.atomic_path(path) as tmp:
    fig.savefig(tmp)
  plt.close(fig)


def run(config, workdir: str) -> dict:
  """MODES['train']: the whole sweep; returns {letter: val_accuracy}."""
  from hw4_jax.ssl import classifier
  os.makedirs(workdir, exist_ok=True)
  letters = [s for s in str(config.get("settings", "ABCDE")).upper() if s.isalnum()]
  bad = [s for s in letters if s not in SETTINGS]
  if bad:
    raise UserError(f"config.settings={config.settings!r}: unknown setting(s) {bad}")
  needed = {SETTINGS[s][0] for s in letters} - {"none"}
  check_inputs(config, needed)
  dirs = pretrain_dirs(config, workdir) if needed else {}
  results, histories = {}, {}
  for letter in letters:
    sub = os.path.join(workdir, letter)
    metrics = _done(sub)
    if metrics is None:
      print(f"[transfer] setting {letter}: {SETTINGS[letter]}", flush=True)
      metrics = classifier.train(setting_config(config, letter, dirs), sub)
    results[letter] = metrics["val_accuracy"]
    histories[letter] = metrics["val_history"]
  files.write_json(os.path.join(workdir, "results.json"), results)
  md = table(results)
  files.write_text(os.path.join(workdir, "results.md"), md)
  plot(histories, os.path.join(workdir, "val_accuracy.png"))
  print(md, flush=True)
  return results


MODES = {"train": run}
