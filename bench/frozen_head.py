"""Setting E (frozen backbone + the classifier's MLP head, 1 epoch) vs the linear probe: is the head or
the feature scale at fault?

  python bench/frozen_head.py BYOL_WORKDIR [FLOWERS_DIR]

On flowers (default ../shared/data/flowers), for the exported backbone of BYOL_WORKDIR and for the
init that run started from (`pretrain.initial_backbone` of the byol `cpu` preset): the raw pooled
features' mean norm and mean per-dimension deviation; E's head (`classifier.ClassifierHead`, Adam
5e-4, warm-up + cosine, batch 64) trained on features extracted once (centre crops, no augmentation)
for 60 steps on raw and on standardised features and for 600 steps on raw ones; and the linear probe.
Prints one JSON line per backbone.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "bench")]


def extract(fn, variables, source):
  """Raw pooled features (not normalised) and labels of every example, in source order."""
  import numpy as np
  from hw4_jax.ssl import pipeline
  feats, labels, index = [], [], []
  for b in pipeline.eval_batches(source, 128, num_threads=2):
    keep = b["mask"]
    feats.append(np.asarray(fn(variables, b["image"]))[keep])
    labels.append(b["label"][keep])
    index.append(b["index"][keep])
  order = np.argsort(np.concatenate(index))
  return np.concatenate(feats)[order], np.concatenate(labels)[order]


def head_accuracy(xt, yt, xv, yv, steps=60, batch=64, lr=5e-4, seed=0) -> float:
  """Val accuracy (%) of setting E's head trained on fixed features."""
  import jax
  import numpy as np
  import optax
  from hw4_jax.ssl import classifier
  head = classifier.ClassifierHead(int(yt.max()) + 1, 256, 4, 0.1, 0.2)
  params = head.init(jax.random.PRNGKey(seed), xt[:2], train=False)
  tx = optax.adam(optax.warmup_cosine_decay_schedule(0.0, lr, min(100, steps // 10), steps))
  state = tx.init(params)

  @jax.jit
  def step(p, s, x, y, key):
    def loss(p):
      logits = head.apply(p, x, train=True, rngs={"dropout": key})
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    updates, s = tx.update(jax.grad(loss)(p), s, p)
    return optax.apply_updates(p, updates), s

  rng = np.random.default_rng(seed)
  for i in range(steps):
    idx = rng.choice(len(xt), batch, replace=False)
    params, state = step(params, state, xt[idx], yt[idx], jax.random.PRNGKey(i))
  return 100.0 * float(np.mean(np.argmax(head.apply(params, xv, train=False), -1) == yv))


def main(workdir: str, flowers: str) -> None:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from load_config import load_config   # bench/load_config.py
  from hw4_jax.ssl import augment, backbone_io, images, pretrain, probe, resnet
  c = load_config("byol", "cpu")
  size = c.augment.crop_size
  train = images.CsvImageSource(f"{flowers}/train.csv", f"{flowers}/train", size)
  val = images.CsvImageSource(f"{flowers}/val.csv", f"{flowers}/val", size, vocab=train.vocab)
  backbone = resnet.from_config(c.model)
  fn = jax.jit(lambda v, x: backbone.apply(v, augment.eval_preprocess(x, size),
                                           train=False).astype(jnp.float32))
  _, byol_vars = backbone_io.load(workdir)
  for name, variables in (("byol", byol_vars), ("init", pretrain.initial_backbone(c))):
    ft, yt = extract(fn, variables, train)
    fv, yv = extract(fn, variables, val)
    mu, sd = ft.mean(0), ft.std(0) + 1e-6
    print(name, json.dumps({
        "feat_norm_mean": float(np.linalg.norm(ft, axis=1).mean()),
        "feat_dim_std_mean": float(ft.std(0).mean()),
        "head_raw_60": head_accuracy(ft, yt, fv, yv),
        "head_std_60": head_accuracy((ft - mu) / sd, yt, (fv - mu) / sd, yv),
        "head_raw_600": head_accuracy(ft, yt, fv, yv, steps=600),
        "probe": probe.linear_probe(ft, yt, fv, yv, num_classes=len(train.vocab))["accuracy"]}),
        flush=True)


if __name__ == "__main__":
  if len(sys.argv) not in (2, 3):
    sys.exit(__doc__)
  main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else
       os.path.join(os.path.dirname(ROOT), "shared", "data", "flowers"))
