"""Train several presets on one scene and write the comparison table (task `dvgo_compare`).

`python -m hw4_jax.main --config=configs/dvgo.py:compare --workdir=DIR
 [--config.compare.presets=setting_a,default] [--config.data.scene_dir=...]` trains each preset in
`DIR/<preset>` (a finished one is not retrained) and writes `DIR/comparison.md` (markdown table
`Setting | PSNR | SSIM | LPIPS (VGG)`) and `DIR/comparison.json`.
"""

from __future__ import annotations

import importlib.util
import json
import os

from hw4_jax.core import distributed
from hw4_jax.core import logging as log_lib
from hw4_jax.core.errors import UserError
from hw4_jax.nerf import train

CONFIG_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "configs", "dvgo.py")
LABELS = {"setting_a": "A (setting_a)", "default": "B (default)"}


def _preset(name: str):
  spec = importlib.util.spec_from_file_location("_dvgo_config", CONFIG_FILE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  try:
    return module.get_config(name)
  except ValueError as err:
    raise UserError(f"config.compare.presets: {err}") from None


def _apply_overrides(config, overrides: str):
  """`a.b=1,c.d=2` -> config values (typed like the existing value)."""
  for item in filter(None, (x.strip() for x in overrides.split(","))):
    if "=" not in item:
      raise UserError(f"config.compare.overrides: '{item}' is not key=value")
    key, value = item.split("=", 1)
    node, *path = key.split(".")
    target = config
    for part in [node, *path][:-1]:
      if part not in target:
        raise UserError(f"config.compare.overrides: unknown key '{key}'")
      target = target[part]
    leaf = key.split(".")[-1]
    if leaf not in target:
      raise UserError(f"config.compare.overrides: unknown key '{key}'")
    old = target[leaf]
    target[leaf] = type(old)(value) if not isinstance(old, (tuple, list)) else eval(value)  # noqa: S307


def run_compare(config, workdir):
  names = [n.strip() for n in config.compare.presets.split(",") if n.strip()]
  if not names:
    raise UserError("config.compare.presets is empty")
  configs = {}
  for name in names:
    cfg = _preset(name)
    with cfg.unlocked():
      cfg.data.scene_dir = config.data.scene_dir
      cfg.data.downscale = config.data.downscale
      _apply_overrides(cfg, config.compare.overrides)
    configs[name] = cfg
  rows = []
  for name, cfg in configs.items():
    print(f"[compare] === {name} ===", flush=True)
    sub = os.path.join(workdir, name)
    train.train_and_evaluate(cfg, sub)
    distributed.barrier(f"dvgo compare: {name} done")  # process 0 wrote the metrics.json read next
    with open(os.path.join(sub, "metrics.json")) as f:
      m = json.load(f)
    rows.append({"setting": LABELS.get(name, name), "preset": name, "psnr": m["psnr"],
                 "ssim": m["ssim"], "lpips_vgg": m["lpips_vgg"],
                 "train_seconds": m.get("train_seconds")})
  lines = ["| Setting | PSNR | SSIM | LPIPS (VGG) |", "|---|---|---|---|"]
  for r in rows:
    lp = "n/a" if r["lpips_vgg"] is None else f"{r['lpips_vgg']:.4f}"
    lines.append(f"| {r['setting']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {lp} |")
  table = "\n".join(lines) + "\n"
  log_lib.write_text(os.path.join(workdir, "comparison.md"), table)
  log_lib.write_json(os.path.join(workdir, "comparison.json"),
                     {"scene_dir": config.data.scene_dir, "downscale": config.data.downscale,
                      "rows": rows})
  print(table, flush=True)


MODES = {"train": run_compare}
