"""BYOL (task=byol) and supervised (task=supervised) pre-training of a ResNet backbone.

Both loops: grain batches of uint8 images -> sharded over the mesh -> one jitted step that augments on
device, runs the network and updates the TrainState (BatchNorm statistics in `model_state`; BYOL's EMA
target inside the optax state). A kNN monitor on a labeled set (config.knn) is logged during training
and its last value lands in `DIR/metrics.json` as `knn_accuracy`. At the end the backbone is exported
(`backbone_io`) for the classifier.
"""

from __future__ import annotations

import os

import jax

from hw4_jax.core import files
from hw4_jax.core import mesh as mesh_lib
from hw4_jax.core.errors import UserError
from hw4_jax.core.state import TrainState
from hw4_jax.ssl import (augment, backbone_io, byol, images, knn, optim, pipeline, resnet,
                         supervised, training)


def write_augment_grid(workdir: str, aug_cfg, images_uint8, seed: int = 0, count: int = 16) -> None:
  """`DIR/augment_pairs.png`: view 1 above view 2 for a few examples, for a person to look at."""
  import jax.numpy as jnp
  x = jnp.asarray(images_uint8[:count])
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  fn = jax.jit(lambda k, im: augment.augment_batch(k, im, aug_cfg, normalize_output=False))
  files.save_png(os.path.join(workdir, "augment_pairs.png"),
                 augment.pair_grid(fn(k1, x), fn(k2, x)))


def build_supervised(config, steps: int, num_classes: int, rng):
  """(net, TrainState, lr schedule) for supervised pre-training at step 0."""
  net = supervised.LinearClassifierNet(resnet.from_config(config.model), num_classes)
  variables = resnet.init_variables(net, config.augment.crop_size, rng)
  tx, lr = optim.make_optimizer(config.optim, steps, config.train.batch_size)
  state = TrainState.create(params=variables["params"], tx=tx, rng=jax.random.PRNGKey(config.seed),
                            model_state=variables["batch_stats"])
  return net, state, lr


def backbone_variables(state) -> dict:
  """The backbone's params and BatchNorm statistics in a BYOL or supervised state."""
  stats = state.model_state["online"] if "online" in state.model_state else state.model_state
  return {"params": state.params["backbone"], "batch_stats": stats["backbone"]}


def train(config, workdir: str) -> dict:
  """MODES['train']: pre-train (BYOL or supervised per config.task), export the backbone."""
  task = config.task
  if task not in ("byol", "supervised"):
    raise UserError(f"config.task={task!r}: pre-training handles 'byol' or 'supervised'")
  os.makedirs(workdir, exist_ok=True)
  mesh = mesh_lib.make_mesh()
  data = pipeline.resolve_data(config.data, workdir)
  source = images.open_source(data, "train", data.image_size, need_label=task == "supervised")
  per_epoch = pipeline.steps_per_epoch(source, config.train.batch_size)
  steps = training.total_steps(config, per_epoch)
  rng = jax.random.PRNGKey(config.seed)
  if task == "byol":
    net, state, lr = byol.build(config, steps, rng)
    step_fn = byol.step_fn(net, config.augment, lr)
  else:
    net, state, lr = build_supervised(config, steps, len(source.vocab), rng)
    step_fn = supervised.step_fn(net, config.augment, lr)
  state = mesh_lib.replicate(state, mesh)
  monitor = None
  if config.knn.train_csv or config.knn.get("source", ""):
    monitor = knn.KnnMonitor(config.knn, mesh, config.augment.crop_size, config.model, workdir)
  eval_fn = (lambda s: {"knn_accuracy": monitor(backbone_variables(s))}) if monitor else None
  train_iter = pipeline.train_iterator(source, config.train.batch_size, seed=config.seed,
                                       num_threads=config.data.num_threads,
                                       num_workers=config.data.num_workers)
  extra = {"vocab": list(source.vocab)} if task == "supervised" else {}
  print(f"[{task}] {len(source)} images from {source.csv_path}, {per_epoch} steps/epoch, "
        f"{steps} steps, batch {config.train.batch_size}, {config.model.backbone} at "
        f"{config.augment.crop_size}px on {len(mesh.devices.flat)} device(s)", flush=True)
  state, summary = training.run(
      config, workdir=workdir, name=task, state=state, step_fn=step_fn, mesh=mesh,
      train_iter=train_iter, total=steps, ckpt_dir=os.path.join(workdir, "ckpt"), extra=extra,
      eval_fn=eval_fn, eval_every=config.knn.every,
      on_first_batch=lambda s, b: write_augment_grid(workdir, config.augment, b["image"],
                                                     config.seed))
  host = mesh_lib.to_host(backbone_variables(state))
  backbone_io.export(workdir, host["params"], host["batch_stats"],
                     {"task": task, "backbone": config.model.backbone, "width": config.model.width,
                      "step": summary["steps"], "image_size": config.augment.crop_size})
  metrics = {"task": task, "steps": summary["steps"], "total_steps": steps,
             "stopped_early": summary["stopped_early"], "wall_s": summary["wall_s"],
             **{f"final_{k}": v for k, v in summary.get("final", {}).items()}}
  if "images_per_s" in summary:
    metrics["images_per_s"] = summary["images_per_s"]
  if summary["evals"]:
    metrics["knn_accuracy"] = summary["evals"][-1][1]["knn_accuracy"]
    metrics["knn_history"] = [[s, v["knn_accuracy"]] for s, v in summary["evals"]]
  files.write_json(os.path.join(workdir, "metrics.json"), metrics)
  return metrics


def random_backbone(config, seed: int | None = None) -> dict:
  """A freshly initialised backbone's variables (the random-init kNN baseline)."""
  key = jax.random.PRNGKey(config.seed if seed is None else seed)
  return resnet.init_variables(resnet.from_config(config.model), config.augment.crop_size, key)


def evaluate(config, workdir: str) -> dict:
  """MODES['eval']: kNN accuracy of the exported backbone in `workdir` (random init if none)."""
  mesh = mesh_lib.make_mesh()
  monitor = knn.KnnMonitor(config.knn, mesh, config.augment.crop_size, config.model, workdir)
  if os.path.isfile(os.path.join(workdir, "backbone.msgpack")):
    meta, variables = backbone_io.load(workdir)
    backbone_io.check_compatible(meta, config.model, workdir)
  else:
    variables = random_backbone(config)
  acc = monitor(mesh_lib.replicate(variables, mesh))
  print(f"[{config.task}] knn_accuracy={acc:.2f}", flush=True)
  files.write_json(os.path.join(workdir, "knn.json"), {"knn_accuracy": acc})
  return {"knn_accuracy": acc}


MODES = {"train": train, "eval": evaluate}
