"""k-nearest-neighbour evaluation of a frozen backbone (k = 20, cosine similarity).

Features are the backbone's pooled output in inference mode, L2-normalised; each validation example
takes the classes of its k most similar training examples, each neighbour voting with weight
exp(sim / T) (T = 0.07, as in InstDisc/DINO's kNN monitor). Accuracy is in percent.
"""

from __future__ import annotations

import numpy as np

from hw4_jax.ssl import features, pipeline


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
  """Holds the labeled kNN sets (config.knn) and scores a backbone's variables on them."""

  def __init__(self, knn, mesh, image_size: int, model_cfg, workdir: str = ""):
    from hw4_jax.ssl import images
    data = pipeline.resolve_data(knn, workdir)
    self.train = images.open_source(data, "train", image_size)
    self.val = images.open_source(data, "val", image_size, vocab=self.train.vocab)
    self.k, self.batch, self.mesh = int(knn.k), int(knn.batch_size), mesh
    self.threads = int(knn.get("num_threads", 8))
    self.fn = features.make_feature_fn(model_cfg, mesh, image_size)

  def __call__(self, variables) -> float:
    tf, ty = features.extract(self.fn, variables, self.train, self.mesh, self.batch, self.threads)
    vf, vy = features.extract(self.fn, variables, self.val, self.mesh, self.batch, self.threads)
    return knn_accuracy(tf, ty, vf, vy, k=self.k, num_classes=len(self.train.vocab))
