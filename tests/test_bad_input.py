"""Bad input through the CLI, table-driven: each case exits 2 with exactly one line (stdout and stderr
together) that starts with `error:` and names the file or key, with no traceback and no JAX
compilation (JAX_LOG_COMPILES would print one), and creates no workdir (or, for an existing one,
writes nothing into it)."""

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT, load_config, subprocess_env

LEGACY_DVGO = os.path.join(ROOT, "tests", "data", "legacy", "dvgo")


def _pose_scene(root, matrix=None, angle=0.69):
  """A scene folder whose transforms_train.json has one bad value (images are never reached)."""
  frames = [{"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()},
            {"file_path": "./train/r_1", "transform_matrix": matrix or np.eye(4).tolist()}]
  root.mkdir(parents=True)
  (root / "transforms_train.json").write_text(json.dumps({"camera_angle_x": angle, "frames": frames}))
  return root


def _cases(tmp):
  """(id, args, what the error line must name, existing workdir or None)."""
  dvgo = ["--config=configs/dvgo.py:demo"]
  cls = ["--config=configs/classifier.py:demo"]
  new = lambda name: f"--workdir={tmp / 'new' / name}"
  trained = tmp / "trained"                       # a DVGO workdir (written before config.json)
  shutil.copytree(LEGACY_DVGO, trained)
  byol_dir = tmp / "byol_run"                     # a BYOL workdir
  byol_dir.mkdir()
  (byol_dir / "config.json").write_text(json.dumps(load_config("byol", "demo").to_dict()))
  other_scene = tmp / "other_scene_run"           # a DVGO workdir of another scene
  other_scene.mkdir()
  cfg = load_config("dvgo", "demo").to_dict()
  cfg["data"]["scene_dir"] = "/somewhere/else"
  (other_scene / "config.json").write_text(json.dumps(cfg))
  collide = tmp / "collide.json"
  collide.write_text(json.dumps({"camera_angle_x": 0.69, "frames": [
      {"file_path": f"./{d}/r_0", "transform_matrix": np.eye(4).tolist()} for d in ("a", "b")]}))
  a_file = tmp / "a_file"
  a_file.write_text("x")
  latin = tmp / "latin.csv"
  latin.write_bytes("id,filename,label\n0,a.jpg,caf\u00e9\n".encode("latin-1"))
  escape = tmp / "escape.csv"
  escape.write_text("id,filename,label\n0,../../etc/passwd,a\n")
  bad_pose = lambda name, m=None, angle=0.69: _pose_scene(tmp / "scenes" / name, m, angle)
  nan_m = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, float("nan")], [0, 0, 0, 1]]
  return [
      ("byol-on-dvgo-workdir", ["--config=configs/byol.py:demo", f"--workdir={trained}"],
       "holds a 'dvgo' run", trained),
      ("classifier-on-byol-workdir", [*cls, f"--workdir={byol_dir}"], "holds a 'byol' run",
       byol_dir),
      ("dvgo-other-scene", [*dvgo, f"--workdir={other_scene}"], "data.scene_dir", other_scene),
      ("pose-not-a-number", [*dvgo, new("a"), f"--config.data.scene_dir="
                             f"{bad_pose('s1', [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 'x'], [0, 0, 0, 1]])}"],
       "frame 1 (./train/r_1): 'transform_matrix' holds a value that is not a number", None),
      ("pose-nan", [*dvgo, new("b"), f"--config.data.scene_dir={bad_pose('s2', nan_m)}"],
       "NaN or infinite", None),
      ("pose-zero-rotation", [*dvgo, new("c"), f"--config.data.scene_dir="
                              f"{bad_pose('s3', [[0, 0, 0, 0]] * 3 + [[0, 0, 0, 1]])}"],
       "all-zero rotation", None),
      ("pose-not-rigid", [*dvgo, new("d"), f"--config.data.scene_dir="
                          f"{bad_pose('s4', [[3, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])}"],
       "not a rigid", None),
      ("angle-zero", [*dvgo, new("e"), f"--config.data.scene_dir={bad_pose('s5', angle=0)}"],
       "'camera_angle_x' = 0", None),
      ("angle-negative", [*dvgo, new("f"), f"--config.data.scene_dir={bad_pose('s6', angle=-1)}"],
       "'camera_angle_x' = -1", None),
      ("render-names-collide", [*dvgo, f"--workdir={trained}", "--config.mode=render",
                                f"--config.render.transforms={collide}",
                                f"--config.render.output_dir={tmp / 'r_out'}"],
       "collide.json: frames 0 and 1 would both be written to r_0.png", trained),
      ("render-nan-pose", [*dvgo, f"--workdir={trained}", "--config.mode=render",
                           f"--config.render.transforms={bad_pose('s7', nan_m)}/transforms_train.json"],
       "NaN or infinite", trained),
      ("num-iters-negative", [*dvgo, new("g"), "--config.coarse.num_iters=-1"],
       "config.coarse.num_iters=-1", None),
      ("batch-size-zero", [*dvgo, new("h"), "--config.fine.batch_size=0"],
       "config.fine.batch_size=0", None),
      ("image-size-zero", ["--config=configs/byol.py:demo", new("i"), "--config.data.image_size=0"],
       "config.data.image_size=0", None),
      ("dtype-float16", [*cls, new("j"), "--config.model.dtype=float16"],
       "config.model.dtype='float16'", None),
      ("pg-scale-text", [*dvgo, new("k"), "--config.fine.pg_scale=abc"],
       "config.fine.pg_scale=('abc',)", None),
      ("near-miss-key", [*dvgo, new("l"), "--config.coarse.num_iter=5"],
       "did you mean 'num_iters'", None),
      ("stray-argument", [*dvgo, new("m"), "stray"], "unexpected argument(s) 'stray'", None),
      ("workdir-is-a-file", [*dvgo, f"--workdir={a_file}"], "a_file: the workdir", a_file),
      ("render-output-is-a-file", [*dvgo, f"--workdir={trained}", "--config.mode=render",
                                   "--config.render.orbit_frames=2",
                                   f"--config.render.output_dir={a_file}"],
       "a_file: config.render.output_dir is a file", trained),
      ("predict-output-is-a-folder", [*cls, new("n"), "--config.mode=predict",
                                      f"--config.predict.csv={escape}",
                                      f"--config.predict.image_dir={tmp}",
                                      f"--config.predict.output_csv={tmp}"],
       "config.predict.output_csv is a folder", None),
      ("csv-not-utf8", [*cls, new("o"), f"--config.data.train_csv={latin}",
                        f"--config.data.train_dir={tmp}", "--config.data.source="],
       "latin.csv: not UTF-8 text", None),
      ("csv-path-escapes", [*cls, new("p"), f"--config.data.train_csv={escape}",
                            f"--config.data.train_dir={tmp}", "--config.data.source="],
       "escape.csv: row 2: filename '../../etc/passwd' is not a path inside", None),
      ("tfds-unknown", ["--config=configs/byol.py:demo", new("q"),
                        "--config.data.source=tfds:no_such_dataset_here"],
       "tfds:no_such_dataset_here", None),
  ]


def _snapshot(path):
  if path is None or not os.path.exists(path):
    return None
  if os.path.isfile(path):
    return {"": os.stat(path).st_mtime_ns}
  return {os.path.relpath(os.path.join(r, f), path): os.stat(os.path.join(r, f)).st_mtime_ns
          for r, _, fs in os.walk(path) for f in fs}


def _run(args):
  return subprocess.run([sys.executable, "-m", "hw4_jax.main", *args], capture_output=True,
                        text=True, env=subprocess_env(1, JAX_LOG_COMPILES="1"), cwd=ROOT, timeout=300)


def test_each_bad_input_is_one_error_line_and_writes_nothing(tmp_path):
  cases = _cases(tmp_path)
  before = {name: _snapshot(existing) for name, _, _, existing in cases}
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    procs = list(pool.map(lambda case: _run(case[1]), cases))
  failures = []
  for (name, _, expected, existing), proc in zip(cases, procs):
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
    ok = (proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ")
          and expected in lines[0] and "Traceback" not in proc.stderr)
    ok = ok and _snapshot(existing) == before[name] and not (tmp_path / "new").exists()
    if not ok:
      failures.append(f"{name}: rc={proc.returncode} {lines[:5]}")
  assert not failures, "\n".join(failures)
