"""BYOL (task=byol) and supervised (task=supervised) pre-training of a ResNet backbone.

Both loops: grain batches of uint8 images -> sharded over the mesh -> one jitted step that augments on
device, runs the network and updates the TrainState (BatchNorm statistics in `model_state`; BYOL's EMA
target inside the optax state). A kNN monitor on a labeled set (config.knn) is logged during training
and its last value lands in `DIR/metrics.json` as `knn_accuracy`. At the end the backbone is exported
(`backbone_io`) for the classifier.
"""

from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from hw4_jax.core import mesh as mesh_lib
from hw4_jax.core.checkpoint import Checkpointer
from hw4_jax.core.errors import UserError
from hw4_jax.core.logging import save_png, write_json
from hw4_jax.core.state import TrainState
from hw4_jax.ssl import augment, backbone_io, byol, images, knn, loop, optim, pipeline, resnet


class SupervisedNet(nn.Module):
  """Backbone + linear classifier (setting B's pre-training)."""
  backbone: nn.Module
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = True):
    return nn.Dense(self.num_classes, name="fc")(self.backbone(x, train=train))

  def features(self, x):
    return self.backbone(x, train=False)


def total_steps(config, steps_per_epoch: int) -> int:
  return int(config.train.num_steps) or int(config.train.num_epochs) * steps_per_epoch


def write_augment_grid(workdir: str, aug_cfg, images_uint8, seed: int = 0, count: int = 16) -> None:
  """`DIR/augment_pairs.png`: view 1 above view 2 for a few examples, for a person to look at."""
  x = jnp.asarray(images_uint8[:count])
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  fn = jax.jit(lambda k, im: augment.augment_batch(k, im, aug_cfg, normalize_output=False))
  save_png(os.path.join(workdir, "augment_pairs.png"), augment.pair_grid(fn(k1, x), fn(k2, x)))


def build_byol(config, steps: int, rng):
  """(net, TrainState, lr schedule) for BYOL at step 0."""
  net = byol.BYOLNet(resnet.from_config(config.model), config.byol.hidden_dim,
                     config.byol.proj_dim)
  size = config.augment.crop_size
  variables = jax.jit(lambda k: net.init(k, jnp.zeros((2, size, size, 3)), train=True))(rng)
  base, lr = optim.make_optimizer(config.optim, steps, config.train.batch_size)
  parts = [base]
  mult = float(config.byol.get("predictor_lr_mult", 1.0))
  if mult != 1.0:  # a faster predictor (DirectPred / SimSiam: the predictor should track the projector)
    parts.append(optax.masked(optax.scale(mult), lambda p: {k: k == "predictor" for k in p}))
  tx = optax.chain(*parts, byol.ema_target(byol.tau_schedule(config.byol.tau_base, steps)))
  stats = variables["batch_stats"]
  state = TrainState.create(apply_fn=net.apply, params=variables["params"], tx=tx,
                            rng=jax.random.PRNGKey(config.seed),
                            model_state={"online": stats,
                                         "target": jax.tree.map(jnp.array,  # own buffers
                                                       {k: stats[k] for k in byol.TARGET_KEYS})})
  return net, state, lr


def byol_step_fn(net, aug_cfg, lr):
  """The pure BYOL step: two augmented views, symmetric loss, online update, EMA target update."""

  def step(state, batch):
    k1, k2 = jax.random.split(state.step_rng())
    images_u8 = batch["image"]
    x = jnp.concatenate([augment.augment_batch(k1, images_u8, aug_cfg),
                         augment.augment_batch(k2, images_u8, aug_cfg)])
    target = byol.find_target(state.opt_state)
    z, t_vars = net.apply({"params": target.target, "batch_stats": state.model_state["target"]}, x,
                          train=True, predict=False, mutable=["batch_stats"])

    def loss_fn(params):
      p, o_vars = net.apply({"params": params, "batch_stats": state.model_state["online"]}, x,
                            train=True, mutable=["batch_stats"])
      p1, p2 = jnp.split(p, 2)
      z1, z2 = jnp.split(z, 2)
      return byol.byol_loss(p1, p2, z1, z2), o_vars["batch_stats"]

    (loss, online_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    lr_now = lr(state.step)
    state = state.apply_gradients(grads, model_state={"online": online_stats,
                                                      "target": t_vars["batch_stats"]})
    return state, {"loss": loss, "tau": byol.find_target(state.opt_state).tau, "lr": lr_now}

  return step


def build_supervised(config, steps: int, num_classes: int, rng):
  net = SupervisedNet(resnet.from_config(config.model), num_classes)
  size = config.augment.crop_size
  variables = jax.jit(lambda k: net.init(k, jnp.zeros((2, size, size, 3)), train=True))(rng)
  tx, lr = optim.make_optimizer(config.optim, steps, config.train.batch_size)
  state = TrainState.create(apply_fn=net.apply, params=variables["params"], tx=tx,
                            rng=jax.random.PRNGKey(config.seed),
                            model_state={"online": variables["batch_stats"]})
  return net, state, lr


def supervised_step_fn(net, aug_cfg, lr):
  def step(state, batch):
    x = augment.augment_batch(state.step_rng(), batch["image"], aug_cfg)

    def loss_fn(params):
      logits, new_vars = net.apply({"params": params, "batch_stats": state.model_state["online"]},
                                   x, train=True, mutable=["batch_stats"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
      return loss, (logits, new_vars["batch_stats"])

    (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    lr_now = lr(state.step)
    state = state.apply_gradients(grads, model_state={"online": stats})
    acc = jnp.mean(jnp.argmax(logits, -1) == batch["label"]) * 100.0
    return state, {"loss": loss, "train_accuracy": acc, "lr": lr_now}

  return step


def backbone_variables(state):
  return {"params": state.params["backbone"], "batch_stats": state.model_state["online"]["backbone"]}


def feature_apply(model_cfg):
  """(variables of a backbone) x images -> pooled features, inference-mode BatchNorm."""
  backbone = resnet.from_config(model_cfg)
  return lambda variables, x: backbone.apply(variables, x, train=False)


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
  steps = total_steps(config, per_epoch)
  rng = jax.random.PRNGKey(config.seed)
  if task == "byol":
    net, state, lr = build_byol(config, steps, rng)
    step_fn = byol_step_fn(net, config.augment, lr)
  else:
    net, state, lr = build_supervised(config, steps, len(source.vocab), rng)
    step_fn = supervised_step_fn(net, config.augment, lr)
  state = mesh_lib.replicate(state, mesh)
  monitor = None
  if config.knn.train_csv or config.knn.get("source", ""):
    monitor = knn.KnnMonitor(config.knn, mesh, config.augment.crop_size, feature_apply(config.model),
                             workdir)
  eval_fn = (lambda s: {"knn_accuracy": monitor(backbone_variables(s))}) if monitor else None
  train_iter = pipeline.train_iterator(source, config.train.batch_size, seed=config.seed,
                                       num_threads=config.data.num_threads,
                                       num_workers=config.data.num_workers)
  ckpt = Checkpointer(os.path.join(workdir, "ckpt"), every=config.train.checkpoint_every,
                      keep=config.train.get("keep_checkpoints", 2))
  extra = {"vocab": list(source.vocab)} if task == "supervised" else {}
  print(f"[{task}] {len(source)} images from {source.csv_path}, {per_epoch} steps/epoch, "
        f"{steps} steps, batch {config.train.batch_size}, {config.model.backbone} at "
        f"{config.augment.crop_size}px on {len(mesh.devices.flat)} device(s)", flush=True)
  state, summary = loop.run(
      workdir=workdir, name=task, state=state, step_fn=step_fn, mesh=mesh, train_iter=train_iter,
      total_steps=steps, ckpt=ckpt, extra=extra, log_every=config.train.log_every,
      eval_fn=eval_fn, eval_every=config.knn.every, time_budget_s=config.train.time_budget_s,
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
  write_json(os.path.join(workdir, "metrics.json"), metrics)
  return metrics


def evaluate(config, workdir: str) -> dict:
  """MODES['eval']: kNN accuracy of the exported backbone in `workdir` (random init if none)."""
  mesh = mesh_lib.make_mesh()
  monitor = knn.KnnMonitor(config.knn, mesh, config.augment.crop_size, feature_apply(config.model),
                           workdir)
  if os.path.isfile(os.path.join(workdir, "backbone.msgpack")):
    meta, variables = backbone_io.load(workdir)
    backbone_io.check_compatible(meta, config.model, workdir)
  else:
    variables = random_backbone(config)
  acc = monitor(mesh_lib.replicate(variables, mesh))
  print(f"[{config.task}] knn_accuracy={acc:.2f}", flush=True)
  write_json(os.path.join(workdir, "knn.json"), {"knn_accuracy": acc})
  return {"knn_accuracy": acc}


def random_backbone(config, seed: int | None = None):
  """A freshly initialised backbone's variables (the random-init kNN baseline)."""
  size = config.augment.crop_size
  backbone = resnet.from_config(config.model)
  key = jax.random.PRNGKey(config.seed if seed is None else seed)
  return jax.jit(lambda k: backbone.init(k, jnp.zeros((2, size, size, 3)), train=False))(key)


MODES = {"train": train, "eval": evaluate}
