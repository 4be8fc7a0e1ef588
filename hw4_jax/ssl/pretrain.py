"""BYOL (task=byol) and supervised (task=supervised) pre-training of a ResNet backbone.

Both loops: grain batches of uint8 images -> sharded over the mesh -> one jitted step that augments on
device, runs the network and updates the TrainState (BatchNorm statistics in `model_state`; BYOL's EMA
target inside the optax state). With a labelled set in `config.knn`, the kNN and linear-probe monitor
(`monitor.py`) is logged during training and its last values land in `DIR/metrics.json`
(`knn_accuracy`, `linear_probe_accuracy`). At the end the backbone is exported (`backbone_io`) for
the classifier. `mode=eval` scores the exported backbone (or the run's initial one) the same way.
"""

from __future__ import annotations

import os

import jax

from hw4_jax.core import files
from hw4_jax.core import mesh as mesh_lib
from hw4_jax.core.errors import UserError
from hw4_jax.core.state import TrainState
from hw4_jax.ssl import (augment, backbone_io, byol, images, monitor, optim, pipeline, resnet,
                         supervised, training)


def write_augment_grid(workdir: str, aug_cfg, images_uint8, seed: int = 0, count: int = 16) -> None:
  """`DIR/augment_pairs.png`: view 1 above view 2 for a few examples, for a person to look at."""
  import jax.numpy as jnp
  x = jnp.asarray(images_uint8[:count])
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  fn = jax.jit(lambda k, im: augment.augment_batch(k, im, aug_cfg, normalize_output=False))
  files.save_png(os.path.join(workdir, "augment_pairs.png"),
                 augment.pair_grid(fn(k1, x), fn(k2, x)))


def supervised_net(config, num_classes: int):
  return supervised.LinearClassifierNet(resnet.from_config(config.model), num_classes)


def build_supervised(config, steps: int, num_classes: int, rng):
  """(net, TrainState, lr schedule) for supervised pre-training at step 0."""
  net = supervised_net(config, num_classes)
  variables = resnet.init_variables(net, config.augment.crop_size, rng)
  tx, lr = optim.make_optimizer(config.optim, steps, config.train.batch_size)
  state = TrainState.create(params=variables["params"], tx=tx, rng=jax.random.PRNGKey(config.seed),
                            model_state=variables["batch_stats"])
  return net, state, lr


def backbone_variables(state) -> dict:
  """The backbone's params and BatchNorm statistics in a BYOL or supervised state."""
  stats = state.model_state["online"] if "online" in state.model_state else state.model_state
  return {"params": state.params["backbone"], "batch_stats": stats["backbone"]}


def _history(evals, key: str) -> list:
  return [[s, v[key]] for s, v in evals if key in v]


def train(config, workdir: str) -> dict:
  """MODES['train']: pre-train (BYOL or supervised per config.task), export the backbone."""
  task = config.task
  if task not in ("byol", "supervised"):
    raise UserError(f"config.task={task!r}: pre-training handles 'byol' or 'supervised'")
  images.check_inputs(config.data, "config.data", ("train",))
  monitoring = images.has_images(config.knn)
  if monitoring:
    images.check_inputs(config.knn, "config.knn")
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
  evaluator = monitor.FrozenEval(config, mesh, workdir) if monitoring else None

  def eval_fn(s, step, final):
    run_knn, run_probe = evaluator.due(step, final)
    return evaluator(backbone_variables(s), run_knn=run_knn, run_probe=run_probe)

  train_iter = pipeline.train_iterator(source, config.train.batch_size, seed=config.seed,
                                       num_threads=config.data.num_threads,
                                       num_workers=config.data.num_workers)
  extra = {"vocab": list(source.vocab)} if task == "supervised" else {}
  print(f"[{task}] {len(source)} images from {source.where}, {per_epoch} steps/epoch, "
        f"{steps} steps, batch {config.train.batch_size}, {config.model.backbone} at "
        f"{config.augment.crop_size}px in {resnet.compute_dtype(config.model.dtype)} on "
        f"{len(mesh.devices.flat)} device(s)", flush=True)
  state, summary = training.run(
      config, workdir=workdir, name=task, state=state, step_fn=step_fn, mesh=mesh,
      train_iter=train_iter, total=steps, ckpt_dir=os.path.join(workdir, "ckpt"), extra=extra,
      eval_fn=eval_fn if evaluator else None, eval_every=monitor.cadence(config),
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
  for key, history in (("knn_accuracy", "knn_history"), ("linear_probe_accuracy", "probe_history")):
    if _history(summary["evals"], key):
      metrics[history] = _history(summary["evals"], key)
      metrics[key] = metrics[history][-1][1]
  files.write_json(os.path.join(workdir, "metrics.json"), metrics)
  return metrics


def initial_backbone(config, seed: int | None = None) -> dict:
  """The backbone's variables at step 0 of the run `config` describes with seed `seed` (default
  `config.seed`): the paired random-init baseline, bit for bit the weights that run started from.

  Flax folds each submodule's name into its key, so a bare backbone initialised from the same key
  would get other weights: the task's whole network is initialised (as `byol.build` /
  `build_supervised` do) and its backbone taken."""
  key = jax.random.PRNGKey(config.seed if seed is None else seed)
  if config.task == "byol":
    net = byol.byol_net(config)
  else:   # supervised: the class count only shapes the linear layer, not the backbone
    net = supervised_net(config, 2)
  variables = resnet.init_variables(net, config.augment.crop_size, key)
  return {"params": variables["params"]["backbone"],
          "batch_stats": variables["batch_stats"]["backbone"]}


def evaluate(config, workdir: str) -> dict:
  """MODES['eval']: kNN and linear-probe accuracy of the exported backbone in `workdir` (of the run's
  initial backbone when there is none), printed and merged into `DIR/metrics.json`."""
  if not images.has_images(config.knn):
    raise UserError("mode=eval scores the backbone on a labelled set, and config.knn names none: "
                    "set config.knn.train_dir and config.knn.val_dir (one sub-folder per class), "
                    "or config.knn.train_csv / val_csv with their folders, or config.knn.source")
  images.check_inputs(config.knn, "config.knn")
  mesh = mesh_lib.make_mesh()
  evaluator = monitor.FrozenEval(config, mesh, workdir)
  if os.path.isfile(os.path.join(workdir, "backbone.msgpack")):
    meta, variables = backbone_io.load(workdir)
    backbone_io.check_compatible(meta, config.model, workdir)
    scored = "backbone.msgpack"
  else:
    variables, scored = initial_backbone(config), f"random init (seed {config.seed})"
  scores = evaluator(mesh_lib.replicate(variables, mesh))
  print(f"[{config.task}] {scored}: knn_accuracy={scores['knn_accuracy']:.2f} "
        f"linear_probe_accuracy={scores['linear_probe_accuracy']:.2f} "
        f"(l2 {scores['linear_probe_l2']:g})", flush=True)
  path = os.path.join(workdir, "metrics.json")
  metrics = files.read_json_object(path, "metrics") if os.path.isfile(path) else {}
  metrics.update(scores, eval_backbone=scored)
  files.write_json(path, metrics)
  return metrics


MODES = {"train": train, "eval": evaluate}
