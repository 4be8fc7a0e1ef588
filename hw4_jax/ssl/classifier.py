"""Image classifier: a ResNet backbone + the reference report's MLP head, fine-tuned fully or frozen.

`config.pretrained` names a pre-training workdir whose exported backbone initialises ours (empty = random
init). Frozen (`config.freeze_backbone`): the backbone gets no gradient (its optimizer branch is
`set_to_zero`) and runs BatchNorm in inference mode, so its params and statistics stay as loaded.
Modes: train (writes `metrics.json` with `val_accuracy` in percent) and predict (a CSV or a folder of
images in, a CSV out).
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hw4_jax.core import files, interrupt
from hw4_jax.core import mesh as mesh_lib
from hw4_jax.core.checkpoint import Checkpointer
from hw4_jax.core.errors import UserError
from hw4_jax.core.state import TrainState
from hw4_jax.ssl import augment, backbone_io, images, optim, pipeline, resnet, supervised, training


class ClassifierHead(nn.Module):
  """`layers` Linear layers (hidden width `hidden`), LeakyReLU + dropout between them, computed in
  `dtype` (float32 parameters; the logits are float32 for the loss)."""
  num_classes: int
  hidden: int = 256
  layers: int = 4
  dropout: float = 0.1
  slope: float = 0.2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    for _ in range(self.layers - 1):
      x = nn.Dense(self.hidden, dtype=self.dtype)(x)
      x = nn.leaky_relu(x, self.slope)
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


class ClassifierNet(nn.Module):
  backbone: nn.Module
  head: nn.Module
  frozen: bool = False

  def __call__(self, x, train: bool = True):
    f = self.backbone(x, train=train and not self.frozen)
    if self.frozen:
      f = jax.lax.stop_gradient(f)
    return self.head(f, train=train)


def build(config, num_classes: int, steps: int):
  """(net, TrainState, lr) with the pre-trained backbone loaded when config.pretrained is set."""
  backbone = resnet.from_config(config.model)
  h = config.head
  net = ClassifierNet(backbone, ClassifierHead(num_classes, h.hidden, h.layers, h.dropout, h.slope,
                                               backbone.dtype),
                      frozen=bool(config.freeze_backbone))
  variables = resnet.init_variables(net, config.augment.crop_size, jax.random.PRNGKey(config.seed))
  params, stats = dict(variables["params"]), dict(variables["batch_stats"])
  if config.pretrained:
    meta, loaded = backbone_io.load(config.pretrained)
    backbone_io.check_compatible(meta, config.model, f"config.pretrained={config.pretrained}")
    params["backbone"] = backbone_io.assign(params["backbone"], loaded["params"], config.pretrained)
    stats["backbone"] = backbone_io.assign(stats["backbone"], loaded["batch_stats"],
                                           config.pretrained)
  tx, lr = optim.make_optimizer(config.optim, steps, config.train.batch_size)
  if config.freeze_backbone:
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()},
                               {k: ("frozen" if k == "backbone" else "train") for k in params})
  state = TrainState.create(params=params, tx=tx, rng=jax.random.PRNGKey(config.seed),
                            model_state=stats)
  return net, state, lr


def make_logits_fn(net, mesh, size: int):
  def fn(state, images_u8):
    return net.apply({"params": state.params, "batch_stats": state.model_state},
                     augment.eval_preprocess(images_u8, size), train=False)

  return jax.jit(fn, in_shardings=(mesh_lib.replicated(mesh), mesh_lib.data_sharding(mesh)),
                 out_shardings=mesh_lib.data_sharding(mesh))


def predict_indices(logits_fn, state, source, mesh, batch_size: int, num_threads: int = 8):
  """Predicted class ids for every example of `source`, in source order."""
  preds, index = [], []
  for host in pipeline.eval_batches(source, batch_size, num_threads=num_threads):
    interrupt.check("the evaluation is redone on the re-run")
    logits = logits_fn(state, mesh_lib.shard_batch(host["image"], mesh))
    out = mesh_lib.to_host({"p": jnp.argmax(logits, -1), "i": mesh_lib.shard_batch(host["index"], mesh),
                            "m": mesh_lib.shard_batch(host["mask"], mesh)})
    preds.append(out["p"][out["m"]])
    index.append(out["i"][out["m"]])
  return np.concatenate(preds)[np.argsort(np.concatenate(index))]


def train(config, workdir: str) -> dict:
  """MODES['train']: fine-tune on data.train_*, score on data.val_*, write metrics.json."""
  images.check_inputs(config.data, "config.data")
  os.makedirs(workdir, exist_ok=True)
  mesh = mesh_lib.make_mesh()
  data = pipeline.resolve_data(config.data, workdir)
  train_src = images.open_source(data, "train", data.image_size)
  val_src = images.open_source(data, "val", data.image_size, vocab=train_src.vocab)
  per_epoch = pipeline.steps_per_epoch(train_src, config.train.batch_size)
  steps = training.total_steps(config, per_epoch)
  net, state, lr = build(config, len(train_src.vocab), steps)
  state = mesh_lib.replicate(state, mesh)
  vocab_path = os.path.join(workdir, "vocab.json")
  if os.path.isfile(vocab_path) and images.load_vocab(vocab_path) != list(train_src.vocab):
    raise UserError(f"{train_src.where}: its labels ({len(train_src.vocab)} classes) are not the "
                    f"ones this workdir was trained with ({vocab_path}); use another --workdir")
  images.save_vocab(vocab_path, train_src.vocab)
  logits_fn = make_logits_fn(net, mesh, config.augment.crop_size)

  def eval_fn(s, step, final):
    pred = predict_indices(logits_fn, s, val_src, mesh, config.train.eval_batch_size,
                           data.num_threads)
    return {"val_accuracy": 100.0 * float(np.mean(pred == val_src.labels))}

  train_iter = pipeline.train_iterator(train_src, config.train.batch_size, seed=config.seed,
                                       num_threads=data.num_threads, num_workers=data.num_workers)
  mode = "frozen" if config.freeze_backbone else "full"
  print(f"[classifier] {len(train_src)} train / {len(val_src)} val images, "
        f"{len(train_src.vocab)} classes, {steps} steps ({per_epoch}/epoch), {mode} fine-tuning, "
        f"pretrained={config.pretrained or 'none'}", flush=True)
  state, summary = training.run(
      config, workdir=workdir, name="classifier", state=state,
      step_fn=supervised.step_fn(net, config.augment, lr, bool(config.freeze_backbone)),
      mesh=mesh, train_iter=train_iter, total=steps, ckpt_dir=os.path.join(workdir, "ckpt"),
      extra={"vocab": list(train_src.vocab)}, eval_fn=eval_fn,
      eval_every=config.train.eval_every or per_epoch)
  history = [[s, v["val_accuracy"]] for s, v in summary["evals"]]
  metrics = {"val_accuracy": history[-1][1], "best_val_accuracy": max(v for _, v in history),
             "val_history": history, "steps": summary["steps"], "total_steps": steps,
             "stopped_early": summary["stopped_early"], "pretrained": config.pretrained,
             "freeze_backbone": bool(config.freeze_backbone), "wall_s": summary["wall_s"],
             **{f"final_{k}": v for k, v in summary.get("final", {}).items()},
             **({"images_per_s": summary["images_per_s"]} if "images_per_s" in summary else {})}
  files.write_json(os.path.join(workdir, "metrics.json"), metrics)
  return metrics


def predict(config, workdir: str) -> str:
  """MODES['predict']: label the images of config.predict.csv (`id,filename,label` out), or with an
  empty `predict.csv` every image in `predict.image_dir` (`filename,label` out, the filename relative
  to that folder), with the model trained in `workdir`."""
  p = config.predict
  if not p.image_dir or not p.output_csv:
    raise UserError("mode=predict needs config.predict.image_dir and .output_csv (and "
                    "config.predict.csv, or '' to label every image in the folder)")
  if p.csv and not os.path.isfile(p.csv):
    raise UserError(f"config.predict.csv={p.csv}: no such file")
  if not os.path.isdir(p.image_dir):
    raise UserError(f"config.predict.image_dir={p.image_dir}: no such folder")
  ckpt = Checkpointer(os.path.join(workdir, "ckpt"), every=1)
  if ckpt.latest_step() is None:
    raise UserError(f"{workdir}: no checkpoint to predict with (train first)")
  vocab = images.load_vocab(os.path.join(workdir, "vocab.json"))
  mesh = mesh_lib.make_mesh()
  if p.csv:
    source = images.CsvImageSource(p.csv, p.image_dir, config.data.image_size, vocab,
                                   need_label=False)
    header, rows = ["id", "filename", "label"], [[r.id, r.filename] for r in source.rows]
  else:
    source = images.FolderImageSource(p.image_dir, config.data.image_size, vocab, need_label=False,
                                      where="config.predict.image_dir")
    header, rows = ["filename", "label"], [[f.replace(os.sep, "/")] for f in source.files]
  net, state, _ = build(_without_pretrained(config), len(vocab), 1)
  state, extra = ckpt.restore_or(mesh_lib.replicate(state, mesh), {})
  ckpt.close()
  vocab = extra.get("vocab", vocab)
  logits_fn = make_logits_fn(net, mesh, config.augment.crop_size)
  pred = predict_indices(logits_fn, state, source, mesh, p.batch_size, config.data.num_threads)
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(header)
  for row, k in zip(rows, pred):
    w.writerow(row + [vocab[int(k)]])
  files.write_text(p.output_csv, buf.getvalue())
  print(f"[classifier] wrote {len(pred)} predictions to {p.output_csv}", flush=True)
  return p.output_csv


def _without_pretrained(config):
  """Predict restores everything from the checkpoint: skip loading the pre-trained backbone."""
  c = config.copy_and_resolve_references()
  with c.unlocked():
    c.pretrained = ""
  return c


MODES = {"train": train, "predict": predict}
