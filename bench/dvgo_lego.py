"""Benchmark: the `cpu` preset on lego at downscale 4; prints ONE result line at the end.

  python bench/dvgo_lego.py [--workdir=/tmp/dvgo_lego_bench] [--keep]

Trains from scratch (the workdir is cleared unless --keep), evaluates the 100 val views, and reports
val PSNR / SSIM / LPIPS-VGG, training wall time, iterations/s of each stage, samples per ray before
and after empty-space skipping, and the render time per view.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--workdir", default="/tmp/dvgo_lego_bench")
  ap.add_argument("--keep", action="store_true", help="resume / reuse an existing workdir")
  ap.add_argument("--preset", default="cpu")
  ap.add_argument("--scene_dir", default=os.path.join(ROOT, "..", "shared", "data", "nerf_synthetic",
                                                      "lego"))
  ap.add_argument("overrides", nargs="*", help="extra --config.x=y flags")
  args = ap.parse_args()
  lego = os.path.abspath(args.scene_dir)
  if not os.path.isdir(lego):
    print(f"dvgo_lego: SKIP (no lego scene at {lego})")
    return
  if not args.keep:
    shutil.rmtree(args.workdir, ignore_errors=True)
  cmd = [sys.executable, "-m", "hw4_jax.main", f"--config=configs/dvgo.py:{args.preset}",
         f"--workdir={args.workdir}", f"--config.data.scene_dir={lego}", *args.overrides]
  t0 = time.perf_counter()
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  lines = []
  for line in proc.stdout:
    if line.startswith("["):
      print(line, end="", flush=True)
    lines.append(line)
  if proc.wait() != 0:
    print("".join(lines[-40:]))
    print(f"dvgo_lego: FAILED (exit {proc.returncode})")
    sys.exit(1)
  wall = time.perf_counter() - t0
  with open(os.path.join(args.workdir, "metrics.json")) as f:
    m = json.load(f)
  text = "".join(lines)
  rate = {st: re.findall(rf"\[{st}\] \d+ steps in [\d.]+s \(([\d.]+) it/s", text) for st in
          ("coarse", "fine")}
  slots = re.findall(r"world sizes \[.*?\]", text)
  with open(os.path.join(args.workdir, "metrics.jsonl")) as f:   # the fine stage's last logged step
    rows = [r for r in map(json.loads, f) if r.get("stage") == "fine" and "debug/color_per_ray" in r]
  fine_pts = [(f"{r['debug/color_per_ray']:.2f}", f"{r['debug/points_per_ray']:.2f}") for r in rows]
  n_slots = re.findall(r"\[fine\] step \d+: grid .*?, (\d+) samples/ray", text)
  rs = m["render_stats"]
  print(f"dvgo_lego: psnr={m['psnr']:.2f} ssim={m['ssim']:.4f} lpips_vgg={m['lpips_vgg']:.4f} "
        f"train_s={m['train_seconds']:.0f} coarse_it/s={rate['coarse'][-1] if rate['coarse'] else '?'} "
        f"fine_it/s={rate['fine'][-1] if rate['fine'] else '?'} "
        f"train_samples/ray: slots={n_slots[-1] if n_slots else '?'} "
        f"in_mask={fine_pts[-1][1] if fine_pts else '?'} colored={fine_pts[-1][0] if fine_pts else '?'} "
        f"render: in_mask/ray={rs['points_per_ray']:.1f} colored/ray={rs['color_points_per_ray']:.1f} "
        f"s/view={m['render_seconds_per_view']:.2f} eval_s={m['eval_seconds']:.0f} "
        f"total_wall_s={wall:.0f}")


if __name__ == "__main__":
  main()
