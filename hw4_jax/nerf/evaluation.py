"""Scoring a trained model on a split with images: PSNR / SSIM / LPIPS-VGG per view and means.

`mode=eval` (and the end of `mode=train`) renders every view of `eval.split`, writes the renders to
`WORKDIR/val_renders/` and the scores to `WORKDIR/metrics.json`.
"""

from __future__ import annotations

import os
import time

import numpy as np

from hw4_jax.core import files, interrupt
from hw4_jax.nerf import image_metrics, scene
from hw4_jax.nerf.views import Renderer


def evaluate_split(renderer: Renderer, split: scene.Split, out_dir: str | None = None,
                   lpips: bool = True, log=print) -> dict:
  """Renders every view of `split`; per-view PSNR / SSIM (/ LPIPS-VGG) and their means."""
  per_view, stats, render_times = [], {}, []
  t0 = time.perf_counter()
  for i, (c2w, name) in enumerate(zip(split.poses, split.names)):
    interrupt.check("evaluation is not saved; the trained model is")
    t1 = time.perf_counter()
    rgb, _, _ = renderer.image(split.camera, c2w, stats)
    render_times.append(time.perf_counter() - t1)
    gt = split.images[i]
    row = {"name": name, "psnr": float(image_metrics.psnr(rgb, gt)[0]),
           "ssim": float(image_metrics.ssim(rgb, gt)[0])}
    if lpips:
      row["lpips_vgg"] = float(image_metrics.lpips(rgb[None], gt[None], net="vgg")[0])
    per_view.append(row)
    if out_dir:
      files.save_png(os.path.join(out_dir, f"{name}.png"), rgb)
    if (i + 1) % 10 == 0 or i + 1 == len(split.names):
      log(f"[eval] {i + 1}/{len(split.names)} views | psnr so far "
          f"{np.mean([r['psnr'] for r in per_view]):.2f}")
  mean = lambda key: float(np.mean([r[key] for r in per_view]))
  return {"psnr": mean("psnr"), "ssim": mean("ssim"), "lpips_vgg": mean("lpips_vgg") if lpips else None,
          "per_view": per_view,
          "eval_seconds": time.perf_counter() - t0,
          # the first view includes compilation; the median is the steady-state cost
          "render_seconds_per_view": float(np.median(render_times)),
          "render_stats": {"points_per_ray": stats["points"] / max(stats["rays"], 1),
                           "color_points_per_ray": stats["color"] / max(stats["rays"], 1),
                           "rerendered_rays": stats.get("rerendered_rays", 0)}}


def evaluate_mode(config, workdir, split: scene.Split | None = None) -> dict:
  """MODES['eval']: renders `eval.split` with the model in `workdir`, writes metrics.json."""
  renderer, meta = Renderer.from_workdir(workdir, config.render.chunk)
  if split is None:
    scene_dir = config.data.scene_dir or meta["scene_dir"]
    split = scene.load_split(scene_dir, config.eval.split, meta["downscale"])
  print(f"[eval] rendering {len(split.names)} {config.eval.split} views at {split.width}x"
        f"{split.height}", flush=True)
  result = evaluate_split(renderer, split, out_dir=os.path.join(workdir, "val_renders"),
                          lpips=config.eval.lpips)
  result["train_seconds"] = meta.get("train_seconds")
  files.write_json(os.path.join(workdir, "metrics.json"), result)
  lp = result["lpips_vgg"]
  print(f"[eval] PSNR {result['psnr']:.2f} SSIM {result['ssim']:.4f} LPIPS(vgg) "
        f"{lp if lp is None else round(lp, 4)} | render {result['render_seconds_per_view']:.2f}s/view",
        flush=True)
  return result
