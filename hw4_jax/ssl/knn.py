"""k-nearest-neighbour evaluation of a frozen backbone (k = 20, cosine similarity).

Features are the backbone's pooled output in inference mode, L2-normalised (`features.py`, extracted
by `monitor.py`); each validation example takes the classes of its k most similar training examples,
each neighbour voting with weight exp(sim / T) (T = 0.07, as in InstDisc/DINO's kNN monitor).
Accuracy is in percent.
"""

from __future__ import annotations

import numpy as np


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
