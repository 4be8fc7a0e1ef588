"""Train several presets on one scene and write the comparison table (task `dvgo_compare`).

`python -m hw4_jax.main --config=configs/dvgo.py:compare --workdir=DIR
 [--config.compare.presets=setting_a,default] [--config.data.scene_dir=...]
 [--config.runs.<preset>.<key>=...]` trains each preset named in `compare.presets` from
`config.runs.<preset>` (the preset's whole config) with the shared `config.data`, in `DIR/<preset>`
(a finished one is not retrained), and writes `DIR/comparison.md` (markdown table
`Setting | PSNR | SSIM | LPIPS (VGG)`) and `DIR/comparison.json`.
"""

from __future__ import annotations

import json
import os

from hw4_jax.core import distributed, files
from hw4_jax.core.errors import UserError
from hw4_jax.nerf import train

LABELS = {"setting_a": "A (setting_a)", "default": "B (default)"}


def run_configs(config) -> dict:
  """{preset: its run config with the shared data}, for the names in `compare.presets`."""
  names = [n.strip() for n in config.compare.presets.split(",") if n.strip()]
  if not names:
    raise UserError("config.compare.presets is empty")
  unknown = [n for n in names if n not in config.runs]
  if unknown:
    raise UserError(f"config.compare.presets: unknown preset(s) {', '.join(unknown)}; valid: "
                    f"{', '.join(config.runs)}")
  configs = {}
  for name in names:
    cfg = config.runs[name].copy_and_resolve_references()
    with cfg.unlocked():
      cfg.data = config.data.copy_and_resolve_references()
    configs[name] = cfg
  return configs


def run_compare(config, workdir):
  rows = []
  for name, cfg in run_configs(config).items():
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
  files.write_text(os.path.join(workdir, "comparison.md"), table)
  files.write_json(os.path.join(workdir, "comparison.json"),
                   {"scene_dir": config.data.scene_dir, "downscale": config.data.downscale,
                    "rows": rows})
  print(table, flush=True)


MODES = {"train": run_compare}
