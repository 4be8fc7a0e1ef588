"""The evaluation of a frozen backbone the field uses, on one labelled set: kNN and the linear probe.

`config.knn` names the set (its train part is the kNN memory bank and the probe's training data, its
val part the queries) and the kNN settings; `config.probe` the linear probe's. Features are extracted
once per evaluation (`features.py`) and scored by whichever of the two is due. Used every N steps
during pre-training (`knn.every` / `probe.every`), by `mode=eval`, and by bench/ssl_transfer.py.
"""

from __future__ import annotations

import math

from hw4_jax.ssl import features, images, knn, pipeline, probe


def cadence(config) -> int:
  """Steps between the monitor's evaluations during training: a common divisor of `knn.every` and
  `probe.every` (0 = only at the end)."""
  every = [int(v) for v in (config.knn.every, config.probe.every) if int(v) > 0]
  return math.gcd(*every) if every else 0


class FrozenEval:
  """Holds the labelled set of `config.knn` and scores a backbone's variables on it."""

  def __init__(self, config, mesh, workdir: str = ""):
    data = pipeline.resolve_data(config.knn, workdir)
    size = config.augment.crop_size
    self.train = images.open_source(data, "train", size, prefix="config.knn")
    self.val = images.open_source(data, "val", size, vocab=self.train.vocab, prefix="config.knn")
    self.knn_cfg, self.probe_cfg, self.mesh = config.knn, config.probe, mesh
    self.threads = int(config.knn.get("num_threads", 8))
    self.fn = features.make_feature_fn(config.model, mesh, size)

  def due(self, step: int, final: bool) -> tuple[bool, bool]:
    """(kNN, probe) due at `step`: every N steps of their own `every`, and both at the end."""
    at = lambda every: final or (int(every) > 0 and step % int(every) == 0)
    return at(self.knn_cfg.every), at(self.probe_cfg.every)

  def __call__(self, variables, *, run_knn: bool = True, run_probe: bool = True) -> dict:
    """{'knn_accuracy', 'linear_probe_accuracy', 'linear_probe_l2'} (those asked for), in %."""
    batch = int(self.knn_cfg.batch_size)
    tf, ty = features.extract(self.fn, variables, self.train, self.mesh, batch, self.threads)
    vf, vy = features.extract(self.fn, variables, self.val, self.mesh, batch, self.threads)
    classes = len(self.train.vocab)
    out = {}
    if run_knn:
      out["knn_accuracy"] = knn.knn_accuracy(tf, ty, vf, vy, k=int(self.knn_cfg.k),
                                             num_classes=classes)
    if run_probe:
      p = self.probe_cfg
      result = probe.linear_probe(tf, ty, vf, vy, num_classes=classes, l2_grid=tuple(p.l2),
                                  holdout=float(p.holdout), steps=int(p.steps))
      out["linear_probe_accuracy"], out["linear_probe_l2"] = result["accuracy"], result["l2"]
    return out
