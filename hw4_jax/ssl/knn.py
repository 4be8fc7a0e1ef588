"""k-nearest-neighbour evaluation of a frozen backbone (k = 20, cosine similarity).

Features are the backbone's pooled output in inference mode, L2-normalised; each validation example
takes the classes of its k most similar training examples, each neighbour voting with weight
exp(sim / T) (T = 0.07, as in InstDisc/DINO's kNN monitor). Accuracy is in percent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.core import mesh as mesh_lib
from hw4_jax.ssl import augment, pipeline


def make_feature_fn(apply_features, mesh, image_size: int):
  """jit(variables, uint8 batch) -> L2-normalised float32 features, batch-sharded."""

  def fn(variables, images):
    f = apply_features(variables, augment.eval_preprocess(images, image_size)).astype(jnp.float32)
    return f / jnp.maximum(jnp.linalg.norm(f, axis=-1, keepdims=True), 1e-12)

  return jax.jit(fn, in_shardings=(mesh_lib.replicated(mesh), mesh_lib.data_sharding(mesh)),
                 out_shardings=mesh_lib.data_sharding(mesh))


def extract(feature_fn, variables, source, mesh, batch_size: int, num_threads: int = 8):
  """(features [N, D], labels [N]) of every example of `source`, in source order."""
  feats, labels, index = [], [], []
  for host in pipeline.eval_batches(source, batch_size, num_threads=num_threads):
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


def knn_accuracy(train_f, train_y, val_f, val_y, *, k: int = 20, num_classes: int,
                 temperature: float = 0.07, chunk: int = 1024) -> float:
  """Weighted kNN top-1 accuracy (percent) of `val` against the `train` memory bank."""
  k = min(k, len(train_f))
  correct = 0
  for s in range(0, len(val_f), chunk):
    sim = val_f[s:s + chunk] @ train_f.T
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    top_sim = np.take_along_axis(sim, top, axis=1)
    votes = np.zeros((len(top), num_classes))
    np.add.at(votes, (np.arange(len(top))[:, None], train_y[top]), np.exp(top_sim / temperature))
    correct += int(np.sum(votes.argmax(1) == val_y[s:s + chunk]))
  return 100.0 * correct / len(val_f)


class KnnMonitor:
  """Holds the labeled kNN sets (config.knn) and scores a backbone on them."""

  def __init__(self, knn, mesh, image_size: int, apply_features, workdir: str = ""):
    from hw4_jax.ssl import images
    data = pipeline.resolve_data(knn, workdir)
    self.train = images.open_source(data, "train", image_size)
    self.val = images.open_source(data, "val", image_size, vocab=self.train.vocab)
    self.k, self.batch, self.mesh = int(knn.k), int(knn.batch_size), mesh
    self.threads = int(knn.get("num_threads", 8))
    self.fn = make_feature_fn(apply_features, mesh, image_size)

  def __call__(self, variables) -> float:
    tf, ty = extract(self.fn, variables, self.train, self.mesh, self.batch, self.threads)
    vf, vy = extract(self.fn, variables, self.val, self.mesh, self.batch, self.threads)
    return knn_accuracy(tf, ty, vf, vy, k=self.k, num_classes=len(self.train.vocab))
