"""The hand-off between pre-training and fine-tuning: `DIR/backbone.msgpack` + `DIR/backbone.json`.

A pre-training run exports its backbone (params + BatchNorm statistics) when it finishes; the classifier
loads it from the workdir named by `config.pretrained`. This decouples the classifier from the
pre-training's optimizer/head layout (BYOL or supervised) and its checkpoint format.
"""

from __future__ import annotations

import json
import os

import flax.serialization
import flax.traverse_util
import jax
import numpy as np

from hw4_jax.core import files
from hw4_jax.core.errors import UserError


def export(workdir: str, params, batch_stats, meta: dict) -> None:
  """Writes the backbone (process 0)."""
  data = flax.serialization.msgpack_serialize(
      jax.tree.map(np.asarray, {"params": params, "batch_stats": batch_stats}))
  files.write_bytes(os.path.join(workdir, "backbone.msgpack"), data)
  files.write_json(os.path.join(workdir, "backbone.json"), meta)


def load(workdir: str) -> tuple[dict, dict]:
  """(meta, {'params', 'batch_stats'}) of a finished pre-training workdir, or a UserError."""
  path, meta_path = os.path.join(workdir, "backbone.msgpack"), os.path.join(workdir, "backbone.json")
  if not os.path.isdir(workdir):
    raise UserError(f"config.pretrained={workdir}: no such pre-training workdir")
  if not (os.path.isfile(path) and os.path.isfile(meta_path)):
    raise UserError(f"{workdir}: no backbone.msgpack/backbone.json (pre-training not finished?)")
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    with open(path, "rb") as f:
      variables = flax.serialization.msgpack_restore(f.read())
  except (OSError, ValueError) as e:
    raise UserError(f"{path}: cannot read the exported backbone ({e})") from None
  return meta, variables


def check_compatible(meta: dict, model_cfg, where: str) -> None:
  for key in ("backbone", "width"):
    if str(meta.get(key)) != str(model_cfg.get(key)):
      raise UserError(f"{where}: pre-trained {key}={meta.get(key)!r} but config.model.{key}="
                      f"{model_cfg.get(key)!r}")


def assign(target, loaded, where: str):
  """Replace `target`'s leaves by `loaded`'s after checking the tree structure and shapes match."""
  t_flat = flax.traverse_util.flatten_dict(flax.serialization.to_state_dict(target))
  l_flat = flax.traverse_util.flatten_dict(loaded)
  if set(t_flat) != set(l_flat):
    raise UserError(f"{where}: exported backbone does not match the configured architecture")
  for k, v in t_flat.items():
    if tuple(np.shape(v)) != tuple(np.shape(l_flat[k])):
      raise UserError(f"{where}: {'/'.join(k)} has shape {np.shape(l_flat[k])}, expected "
                      f"{np.shape(v)}")
  restored = flax.traverse_util.unflatten_dict(
      {k: np.asarray(l_flat[k], np.asarray(v).dtype) for k, v in t_flat.items()})
  return flax.serialization.from_state_dict(target, restored)
