"""Frozen-backbone features of a whole dataset: what the kNN monitor (and a linear probe) score.

Centre-resized images, no augmentation, BatchNorm in inference mode, global-average-pooled features,
L2-normalised; computed batch-sharded over the mesh and gathered in dataset order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.core import interrupt
from hw4_jax.core import mesh as mesh_lib
from hw4_jax.ssl import augment, pipeline, resnet


def make_feature_fn(model_cfg, mesh, image_size: int):
  """jit(backbone variables, uint8 batch) -> L2-normalised float32 features, batch-sharded."""
  backbone = resnet.from_config(model_cfg)

  def fn(variables, images):
    x = augment.eval_preprocess(images, image_size)
    f = backbone.apply(variables, x, train=False).astype(jnp.float32)
    return f / jnp.maximum(jnp.linalg.norm(f, axis=-1, keepdims=True), 1e-12)

  return jax.jit(fn, in_shardings=(mesh_lib.replicated(mesh), mesh_lib.data_sharding(mesh)),
                 out_shardings=mesh_lib.data_sharding(mesh))


def extract(feature_fn, variables, source, mesh, batch_size: int, num_threads: int = 8):
  """(features [N, D], labels [N]) of every example of `source`, in source order."""
  feats, labels, index = [], [], []
  for host in pipeline.eval_batches(source, batch_size, num_threads=num_threads):
    interrupt.check("the evaluation is redone on the re-run")
    out = feature_fn(variables, mesh_lib.shard_batch(host["image"], mesh))
    gathered = mesh_lib.to_host({"f": out, "y": mesh_lib.shard_batch(host["label"], mesh),
                                 "i": mesh_lib.shard_batch(host["index"], mesh),
                                 "m": mesh_lib.shard_batch(host["mask"], mesh)})
    keep = gathered["m"]
    feats.append(gathered["f"][keep])
    labels.append(gathered["y"][keep])
    index.append(gathered["i"][keep])
  order = np.argsort(np.concatenate(index))
  return np.concatenate(feats)[order], np.concatenate(labels)[order]
