"""Benchmark: DVGO's CPU presets on lego at downscale 4, quality per minute of training.

  python bench/dvgo_lego.py [--presets=cpu_fast,cpu] [--every_s=30] [--workdir=/tmp/dvgo_lego_bench]
                            [--keep] [--scene_dir=...] [--config.x=y ...]

Trains each preset from scratch (the workdirs are cleared unless --keep) with `eval.curve_every_s`:
every N seconds of training the PSNR of the first 10 val views (the clock stopped while it renders).
Prints one line per curve point, writes `WORKDIR/quality_per_minute.png` (both presets), and ends
with one result line per preset on one line: the final PSNR / SSIM / LPIPS on all 100 val views
(lego's val views; the presets were tuned on held-out train views), `train_s` (both stages, wall
time, compilation included, the curve's renders excluded) and the minute at which the curve first
reached 30, 31, 32 and 33 dB.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEVELS = (30, 31, 32, 33)


def curve(workdir: str) -> list[tuple[float, float]]:
  """(training seconds, psnr) points of a run's quality curve."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f if '"stage": "curve"' in line]
  return [(r["train_s"], r["psnr"]) for r in rows]


def first_minute(points, level: float) -> str:
  return next((f"{t / 60:.1f}" for t, p in points if p >= level), "-")


def plot(curves: dict, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
  for name, points in curves.items():
    ax.plot([t / 60 for t, _ in points], [p for _, p in points], marker="o", markersize=3,
            label=name)
  for level in LEVELS:
    ax.axhline(level, color="grey", lw=0.5, ls=":")
  ax.set_xlabel("minutes of training (2 CPU cores)")
  ax.set_ylabel("PSNR on 10 lego val views (dB)")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--workdir", default="/tmp/dvgo_lego_bench")
  ap.add_argument("--keep", action="store_true", help="resume / reuse existing workdirs")
  ap.add_argument("--presets", default="cpu_fast,cpu")
  ap.add_argument("--every_s", type=float, default=30.0)
  ap.add_argument("--scene_dir", default=os.path.join(ROOT, "..", "shared", "data", "nerf_synthetic",
                                                      "lego"))
  args, overrides = ap.parse_known_args()   # the rest: --config.x=y flags for every run
  bad = [a for a in overrides if not a.startswith("--config.")]
  if bad:
    ap.error(f"unknown arguments {bad} (only --config.x=y overrides are passed on)")
  lego = os.path.abspath(args.scene_dir)
  if not os.path.isdir(lego):
    print(f"dvgo_lego: SKIP (no lego scene at {lego})")
    return
  os.makedirs(args.workdir, exist_ok=True)
  curves, results = {}, []
  for preset in args.presets.split(","):
    work = os.path.join(args.workdir, preset)
    if not args.keep:
      shutil.rmtree(work, ignore_errors=True)
    cmd = [sys.executable, "-m", "hw4_jax.main", f"--config=configs/dvgo.py:{preset}",
           f"--workdir={work}", f"--config.data.scene_dir={lego}",
           f"--config.eval.curve_every_s={args.every_s}", *overrides]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
      if line.startswith(("[curve]", "[eval] PSNR", "[coarse] ", "[fine] ")) and " it/s" not in line:
        print(f"[{preset}] {line}", end="", flush=True)
      lines.append(line)
    if proc.wait() != 0:
      print("".join(lines[-40:]))
      print(f"dvgo_lego: FAILED ({preset}: exit {proc.returncode})")
      sys.exit(1)
    with open(os.path.join(work, "metrics.json")) as f:
      m = json.load(f)
    points = curve(work)
    curves[preset] = points
    reached = " ".join(f"t{lv}={first_minute(points, lv)}" for lv in LEVELS)
    results.append(f"{preset}: psnr={m['psnr']:.2f} ssim={m['ssim']:.4f} "
                   f"lpips_vgg={m['lpips_vgg']:.4f} ({m['num_views']} {m['split']} views) "
                   f"train_s={m['train_seconds']:.0f} {reached} (minutes)")
  plot(curves, os.path.join(args.workdir, "quality_per_minute.png"))
  print(f"[bench] plot: {os.path.join(args.workdir, 'quality_per_minute.png')}")
  print("dvgo_lego: " + " | ".join(results))


if __name__ == "__main__":
  main()
