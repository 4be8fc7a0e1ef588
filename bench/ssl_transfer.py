"""Benchmark: BYOL vs supervised vs no pre-training, end to end on the real data, on this CPU.

1. BYOL-pretrain the `cpu` preset on ../shared/data/mini for a bounded time (--byol_minutes), with
   the kNN / linear-probe monitor on flowers.
2. Supervised-pretrain likewise (--supervised_minutes).
3. The A-E sweep on ../shared/data/flowers (configs/transfer.py:cpu, --finetune_epochs).
4. kNN (k=20, cosine) and linear-probe accuracy on flowers val of the BYOL backbone vs the init BYOL
   started from (knn_random, probe_random: the same weights, `pretrain.initial_backbone`), and for
   scale the spread over --random_seeds other inits.
The step count of each pre-training is set so that it fits its budget (a short timing of the step
first), so the tau and learning-rate schedules end where they should; the budget is also a hard cap.
Ends with one line:
  knn_byol=<pct> knn_random=<pct> probe_byol=<pct> probe_random=<pct> A=<pct> B=<pct> C=<pct> D=<pct> E=<pct>
Smoke run: --byol_minutes=1 --supervised_minutes=1 --finetune_epochs=0.1
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/hw4_ssl_transfer_bench", "Output folder (resumable).")
_DATA = flags.DEFINE_string("data", os.path.join(os.path.dirname(ROOT), "shared", "data"),
                            "The shared real-data folder.")
_BYOL_MIN = flags.DEFINE_float("byol_minutes", 30.0, "BYOL pre-training budget (minutes).")
_SUP_MIN = flags.DEFINE_float("supervised_minutes", 30.0, "Supervised pre-training budget.")
_RANDOM_SEEDS = flags.DEFINE_integer("random_seeds", 4, "Further random inits whose kNN is printed "
                                     "next to the paired one (the BYOL run's own init).")
_FT_EPOCHS = flags.DEFINE_float("finetune_epochs", 0.0, "Fine-tuning epochs per setting "
                                "(0: the cpu preset's).")


def load_config(name: str, preset: str = "cpu"):
  from load_config import load_config as load   # bench/load_config.py
  return load(name, preset)


def point_at_data(c, data: str) -> None:
  """Rewrite the presets' ../shared/data paths to --data; the monitor (if any) scores on flowers."""
  if "knn" in c:   # the monitor scores on flowers
    for split in ("train", "val"):
      c.knn[f"{split}_csv"] = f"../shared/data/flowers/{split}.csv"
      c.knn[f"{split}_dir"] = f"../shared/data/flowers/{split}"
  for block in ("data", "knn"):
    if block in c:
      for key in ("train_csv", "train_dir", "val_csv", "val_dir"):
        value = c[block][key]
        if value.startswith("../shared/data"):
          c[block][key] = os.path.join(data, value[len("../shared/data/"):])


def num_images(data) -> int:
  """Images in the train split a config's `data` block names."""
  from hw4_jax.ssl import images
  return len(images.open_source(data, "train", 8, need_label=False))


def seconds_per_step(config) -> float:
  """Time a few steps of this pre-training (after compiling) on random images."""
  import jax
  import numpy as np
  from hw4_jax.core import mesh as mesh_lib
  from hw4_jax.ssl import byol, pretrain, supervised
  mesh = mesh_lib.make_mesh()
  rng = jax.random.PRNGKey(0)
  if config.task == "byol":
    net, state, lr = byol.build(config, 1000, rng)
    fn = byol.step_fn(net, config.augment, lr)
  else:
    net, state, lr = pretrain.build_supervised(config, 1000, 64, rng)
    fn = supervised.step_fn(net, config.augment, lr)
  step = mesh_lib.jit_step(fn, mesh)
  state = mesh_lib.replicate(state, mesh)
  b, s = config.train.batch_size, config.data.image_size
  batch = mesh_lib.shard_batch({"image": np.random.default_rng(0).integers(0, 256, (b, s, s, 3),
                                                                           dtype=np.uint8),
                                "label": np.zeros(b, np.int32)}, mesh)
  state, m = step(state, batch)
  jax.block_until_ready(m)
  t = time.perf_counter()
  for _ in range(3):
    state, m = step(state, batch)
  jax.block_until_ready(m)
  return (time.perf_counter() - t) / 3


def pretrain_bounded(task: str, minutes: float, workdir: str) -> dict:
  from hw4_jax.ssl import pretrain
  if os.path.isfile(os.path.join(workdir, "backbone.msgpack")):
    with open(os.path.join(workdir, "metrics.json")) as f:
      return json.load(f)
  c = load_config("byol" if task == "byol" else "supervised")
  point_at_data(c, _DATA.value)
  per_step = seconds_per_step(c)
  budget = minutes * 60.0
  # Leave room for compilation, kNN evaluations and checkpoints inside the budget.
  steps = max(int(0.85 * budget / per_step), 2)
  c.train.num_steps = steps
  c.time_budget_s = budget
  c.knn.every = c.probe.every = -(-steps // 2)   # half-way and at the end (ceil: not one step early)
  print(f"[bench] {task}: {per_step:.2f} s/step -> {steps} steps in {minutes:g} min "
        f"({steps * c.train.batch_size / num_images(c.data):.1f} epochs of "
        f"{os.path.basename(os.path.dirname(c.data.train_dir))})", flush=True)
  return pretrain.train(c, workdir)


def main(argv):
  del argv
  import numpy as np
  from hw4_jax.core import mesh as mesh_lib
  from hw4_jax.ssl import backbone_io, monitor, pretrain, transfer
  t0 = time.perf_counter()
  os.makedirs(_WORKDIR.value, exist_ok=True)
  dirs = {"byol": os.path.join(_WORKDIR.value, "byol"),
          "supervised": os.path.join(_WORKDIR.value, "supervised")}
  byol_m = pretrain_bounded("byol", _BYOL_MIN.value, dirs["byol"])
  sup_m = pretrain_bounded("supervised", _SUP_MIN.value, dirs["supervised"])

  sweep = load_config("transfer")
  point_at_data(sweep.classifier, _DATA.value)
  sweep.byol_workdir, sweep.supervised_workdir = dirs["byol"], dirs["supervised"]
  if _FT_EPOCHS.value:
    sweep.classifier.train.num_epochs = 0
    per_epoch = num_images(sweep.classifier.data) // sweep.classifier.train.batch_size
    sweep.classifier.train.num_steps = max(int(_FT_EPOCHS.value * per_epoch), 2)
    sweep.classifier.train.eval_every = max(sweep.classifier.train.num_steps // 4, 1)
    # The preset's 100 warm-up steps would span a 1-epoch run (60 steps), which would then be
    # scored at the peak learning rate; keep the warm-up at most a tenth of the shortened run.
    sweep.classifier.optim.warmup_steps = min(sweep.classifier.optim.warmup_steps,
                                              max(sweep.classifier.train.num_steps // 10, 1))
  results = transfer.run(sweep, os.path.join(_WORKDIR.value, "sweep"))

  # kNN and linear probe on flowers val: the BYOL backbone vs the init it started from.
  byol_cfg = load_config("byol")
  point_at_data(byol_cfg, _DATA.value)
  mesh = mesh_lib.make_mesh()
  evaluate = monitor.FrozenEval(byol_cfg, mesh)
  score = lambda variables: evaluate(mesh_lib.replicate(variables, mesh))
  _, byol_vars = backbone_io.load(dirs["byol"])
  s_byol = score(byol_vars)
  s_random = score(pretrain.initial_backbone(byol_cfg))   # the weights BYOL's step 0 had
  seeds = range(byol_cfg.seed + 1, byol_cfg.seed + 1 + _RANDOM_SEEDS.value)
  others = [score(pretrain.initial_backbone(byol_cfg, seed=s)) for s in seeds]
  print(f"[bench] BYOL: {byol_m['steps']} steps ({byol_m.get('images_per_s', 0):.1f} img/s), "
        f"supervised: {sup_m['steps']} steps ({sup_m.get('images_per_s', 0):.1f} img/s), "
        f"total {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
  for key, name in (("knn_accuracy", "kNN (k=20, cosine)"), ("linear_probe_accuracy", "linear probe")):
    b, r = s_byol[key], s_random[key]
    print(f"[bench] {name} on flowers val: BYOL {b:.2f}% vs its init {r:.2f}% ({b - r:+.2f} points)",
          flush=True)
    if others:
      every = [r] + [o[key] for o in others]
      print(f"[bench] {name} of random inits, seeds {byol_cfg.seed}..{seeds[-1]}: "
            f"{' '.join(f'{a:.2f}' for a in every)}; mean {np.mean(every):.2f} "
            f"(BYOL {b - np.mean(every):+.2f} points), max {max(every):.2f}", flush=True)
  print(f"knn_byol={s_byol['knn_accuracy']:.2f} knn_random={s_random['knn_accuracy']:.2f} "
        f"probe_byol={s_byol['linear_probe_accuracy']:.2f} "
        f"probe_random={s_random['linear_probe_accuracy']:.2f} " +
        " ".join(f"{k}={results[k]:.2f}" for k in "ABCDE"))


if __name__ == "__main__":
  sys.path.insert(0, ROOT)
  app.run(main)
