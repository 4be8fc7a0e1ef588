"""Scoring a trained model on a split with images: PSNR / SSIM / LPIPS-VGG per view and means.

`mode=eval` (and the end of `mode=train`) renders every view of the evaluation split, writes the
renders to `WORKDIR/val_renders/` and the scores to `WORKDIR/metrics.json` and TensorBoard.
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np

from hw4_jax.core import files, interrupt
from hw4_jax.core.checkpoint import latest_step
from hw4_jax.core.progress import Logger, Ticker
from hw4_jax.nerf import image_metrics, scene
from hw4_jax.nerf.views import Renderer, render_spec


def evaluate_split(renderer: Renderer, split: scene.Split, out_dir: str | None = None,
                   lpips: bool = True) -> dict:
  """Renders every view of `split`; per-view PSNR / SSIM (/ LPIPS-VGG) and their means."""
  per_view, stats, render_times = [], {}, []
  t0 = time.perf_counter()
  ticker = Ticker("eval", len(split), "views")
  for i, (c2w, name) in enumerate(zip(split.poses, split.names)):
    interrupt.check("the evaluation is redone on the re-run; the trained model is saved")
    t1 = time.perf_counter()
    rgb, _, _ = renderer.image(split.camera(i), c2w, stats)
    render_times.append(time.perf_counter() - t1)
    gt = split.images[i]
    row = {"name": name, "psnr": float(image_metrics.psnr(rgb, gt)[0]),
           "ssim": float(image_metrics.ssim(rgb, gt)[0])}
    if lpips:
      row["lpips_vgg"] = float(image_metrics.lpips(rgb[None], gt[None], net="vgg")[0])
    per_view.append(row)
    if out_dir:
      files.save_png(os.path.join(out_dir, f"{name}.png"), rgb)
    ticker.tick(i + 1, f"psnr so far {np.mean([r['psnr'] for r in per_view]):.2f}")
  mean = lambda key: float(np.mean([r[key] for r in per_view]))
  return {"psnr": mean("psnr"), "ssim": mean("ssim"), "lpips_vgg": mean("lpips_vgg") if lpips else None,
          "num_views": len(per_view), "per_view": per_view,
          "eval_seconds": time.perf_counter() - t0,
          # the first view includes compilation; the median is the steady-state cost
          "render_seconds_per_view": float(np.median(render_times)),
          "render_stats": {"points_per_ray": stats["points"] / max(stats["rays"], 1),
                           "color_points_per_ray": stats["color"] / max(stats["rays"], 1),
                           "rerendered_rays": stats.get("rerendered_rays", 0)}}


class TrainClock:
  """Wall time of training, with the renders (quality curve, stage previews) left out of it."""

  def __init__(self):
    self._t0, self.paused_s = time.perf_counter(), 0.0

  def seconds(self) -> float:
    return time.perf_counter() - self._t0 - self.paused_s

  @contextlib.contextmanager
  def paused(self):
    """Time spent inside the block (renders, previews) is not training time."""
    t0 = time.perf_counter()
    try:
      yield
    finally:
      self.paused_s += time.perf_counter() - t0


class QualityCurve:
  """PSNR of a fixed subset of the evaluation views (`eval.curve_views`, the first ones) every
  `eval.curve_every_s` seconds of training, the clock stopped while it renders: a quality-per-time
  curve in TensorBoard (`curve/psnr` against seconds) and metrics.jsonl (loop `curve`)."""

  def __init__(self, workdir: str, split: scene.Split, every_s: float, views: int,
               clock: TrainClock, chunk: int):
    n = min(int(views), len(split))
    self.split = scene.Split(split.poses[:n], split.intrinsics[:n], split.height, split.width,
                             split.names[:n], split.images[:n])
    self.every_s, self.clock, self.chunk = float(every_s), clock, chunk
    self.next = self.every_s
    self.logger = Logger(workdir, "curve", 0, log_every=1, start_step=None)

  def maybe(self, loop: str, step: int, params, buffers, spec, force: bool = False) -> None:
    """Scores the model if the next point of the curve is due (or `force`)."""
    now = self.clock.seconds()
    if not force and now < self.next:
      return
    with self.clock.paused():
      renderer = Renderer(params, buffers, render_spec(spec), self.chunk)
      psnr = float(np.mean([image_metrics.psnr(renderer.image(self.split.camera(i), c2w)[0],
                                               self.split.images[i])[0]
                            for i, c2w in enumerate(self.split.poses)]))
      self.logger.scalars(int(round(now)), {"psnr": psnr, "train_s": now, f"{loop}_step": step})
      print(f"[curve] {now:.0f}s of training ({loop} step {step}): psnr {psnr:.2f} on "
            f"{len(self.split)} views", flush=True)
    while self.next <= now:
      self.next += self.every_s

  def close(self) -> None:
    self.logger.close()


def evaluate_mode(config, workdir, split: scene.Split | None = None, split_name: str = "") -> dict:
  """MODES['eval']: renders the evaluation split (`eval.split`, default: test if the scene has
  one, else val, else the held-out frames) with the model in `workdir`; writes metrics.json and
  the scores to TensorBoard (`eval/*`)."""
  renderer, meta = Renderer.from_workdir(workdir, config.render.chunk)
  sc = scene.configured(config.data, config.data.scene_dir or meta["scene_dir"])
  if split is None:
    split_name = sc.eval_split(config.eval.split)
    split = sc.load(split_name, meta["downscale"], meta.get("white_bkgd", True))
  print(f"[eval] rendering {len(split)} {split_name} views at {split.width}x{split.height}",
        flush=True)
  result = evaluate_split(renderer, split, out_dir=os.path.join(workdir, "val_renders"),
                          lpips=config.eval.lpips)
  result.update(split=split_name, split_rule=sc.split_rule, train_seconds=meta.get("train_seconds"))
  files.write_json(os.path.join(workdir, "metrics.json"), result)
  step = latest_step(os.path.join(workdir, "ckpt_fine")) or 0
  logger = Logger(workdir, "eval", step, log_every=1, start_step=step)
  logger.scalars(step, {k: result[k] for k in ("psnr", "ssim", "lpips_vgg") if result[k] is not None})
  logger.close()
  lp = result["lpips_vgg"]
  print(f"[eval] PSNR {result['psnr']:.2f} SSIM {result['ssim']:.4f} LPIPS(vgg) "
        f"{lp if lp is None else round(lp, 4)} on {len(split)} {split_name} views | render "
        f"{result['render_seconds_per_view']:.2f}s/view", flush=True)
  return result
