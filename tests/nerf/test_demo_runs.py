"""The demo preset itself: a PSNR floor after a fraction of its steps, and (long) on 4 simulated
devices, alone and under load, and its exported mesh."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import run_main


def _ok(proc):
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc


# The demo preset on 4 simulated devices used to abort early in the coarse stage ("Termination
# timeout for all gather ... Expected 4 threads to join the rendezvous"): the host ran 32 steps
# ahead and XLA:CPU's launch pool starved (hw4_jax/core/loop.py; tests/core/test_loop.py checks the
# pacing on every run). 120 coarse steps were enough to abort it in every try; paced, it finishes
# and matches one device. Minutes each: not in the default run (`pytest -m long`).
DEMO_SHORT = ["--config=configs/dvgo.py:demo", "--config.coarse.num_iters=120",
              "--config.fine.num_iters=40", "--config.eval.lpips=False"]
DEMO_ISSUE = ["--config=configs/dvgo.py:demo", "--config.coarse.num_iters=300",
              "--config.fine.num_iters=300"]


def _devices_match(tmp_path, args, load=0):
  burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
  try:
    four = _ok(run_main(*args, f"--workdir={tmp_path / 'four'}", devices=4, timeout=1800))
  finally:
    for b in burners:
      b.kill()
  _ok(run_main(*args, f"--workdir={tmp_path / 'one'}", timeout=1800))
  m4, m1 = (json.loads((tmp_path / w / "metrics.json").read_text()) for w in ("four", "one"))
  assert abs(m4["psnr"] - m1["psnr"]) <= 0.05, (m4["psnr"], m1["psnr"])
  return four


@pytest.mark.long
@pytest.mark.parametrize("args,load", [(DEMO_SHORT, 0), (DEMO_ISSUE, 0), (DEMO_ISSUE, 2)],
                         ids=["short", "issue", "issue-under-load"])
def test_demo_preset_on_four_simulated_devices(tmp_path, args, load):
  """The demo preset on 4 devices finishes and matches 1 device, alone and beside two busy
  processes (`load`)."""
  _devices_match(tmp_path, args, load)


@pytest.mark.slow
def test_short_demo_run_beats_psnr_floor(tmp_path):
  work = tmp_path / "demo"
  # a fraction of the demo preset's steps (the full preset reaches ~33 dB; the test tiny run ~13)
  _ok(run_main("--config=configs/dvgo.py:demo", "--config.coarse.num_iters=100",
               "--config.fine.num_iters=100", "--config.fine.pg_scale=(30,60)",
               "--config.eval.lpips=False", f"--workdir={work}", timeout=900))
  m = json.loads((work / "metrics.json").read_text())
  assert m["psnr"] >= 20.0, m["psnr"]   # measured 21.9 on the test views (random weights: ~10)


@pytest.mark.long
def test_trained_demo_scene_exports_its_solids(tmp_path):
  """The demo preset trained in full (~6 CPU minutes), exported at the default alpha_thres: two
  connected meshes (the big sphere and the box are 0.002 apart, under a voxel, and merge at this
  threshold; the small sphere), the surface within a voxel of the analytic shapes (measured:
  median 0.52 voxel, 90th percentile 1.17)."""
  import plyfile
  from tests.nerf.test_export import _components, _sdf
  work = tmp_path / "demo"
  _ok(run_main("--config=configs/dvgo.py:demo", "--config.eval.lpips=False", f"--workdir={work}",
               timeout=1800))
  _ok(run_main("--config=configs/dvgo.py:demo", "--config.mode=export", f"--workdir={work}"))
  ply = plyfile.PlyData.read(str(work / "export" / "mesh.ply"))
  v = ply["vertex"].data
  xyz = np.stack([v["x"], v["y"], v["z"]], -1).astype(np.float64)
  faces = np.stack(ply["face"].data["vertex_indices"])
  cams = json.loads((work / "export" / "bbox_and_cams.json").read_text())
  lo, hi = (np.asarray(b) for b in cams["fine_bbox"])
  size = np.asarray(json.loads((work / "model.json").read_text())["world_size"])
  voxel = float(((hi - lo) / (size - 1)).mean())
  dist = np.abs(_sdf(xyz)) / voxel
  assert _components(faces, len(xyz)) == 2
  assert np.median(dist) <= 1.0 and np.percentile(dist, 90) <= 1.5, (np.median(dist),
                                                                    np.percentile(dist, 90))
