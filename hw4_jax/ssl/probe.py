"""Linear probe: the BYOL paper's linear evaluation of frozen features, scaled down.

A multinomial logistic regression on the frozen backbone's features (`features.py`: centre-resized
images, no augmentation, inference-mode BatchNorm), fitted by L-BFGS (optax) to convergence on a
convex loss, with an L2 penalty on the weights chosen from `l2_grid` by the accuracy on a held-out
part of the train split; then refitted on the whole train split with that penalty and scored on
val. Features are standardised with the train split's mean and deviation first, so the penalty
means the same whatever the scale of a backbone's features. Accuracy in percent.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@functools.partial(jax.jit, static_argnames=("num_classes", "steps"))
def fit(x, y, use, l2, *, num_classes: int, steps: int = 100):
  """(weights [D, C], bias [C]) minimising the mean cross-entropy over the rows with `use` = 1 +
  l2 * |weights|^2. (A mask instead of a subset: the held-out fits and the final one share one
  compiled program.)"""
  params = {"w": jnp.zeros((x.shape[1], num_classes), jnp.float32),
            "b": jnp.zeros((num_classes,), jnp.float32)}

  def loss(p):
    logits = x @ p["w"] + p["b"]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return jnp.sum(use * ce) / jnp.sum(use) + l2 * jnp.sum(p["w"] ** 2)

  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss)

  def step(_, carry):
    p, state = carry
    value, grad = value_and_grad(p, state=state)
    updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=loss)
    return optax.apply_updates(p, updates), state

  params, _ = jax.lax.fori_loop(0, steps, step, (params, opt.init(params)))
  return params["w"], params["b"]


def _accuracy(w, b, x, y) -> float:
  return 100.0 * float(np.mean(np.argmax(np.asarray(x @ w + b), -1) == y))


def _standardise(fit_rows, *sets):
  """The sets standardised with the mean and deviation of `fit_rows` (the rows the fit sees)."""
  mean, std = fit_rows.mean(0), fit_rows.std(0) + 1e-6
  return [(a - mean) / std for a in sets]


def linear_probe(train_f, train_y, val_f, val_y, *, num_classes: int, l2_grid=L2_GRID,
                 holdout: float = 0.2, steps: int = 100, seed: int = 0) -> dict:
  """{'accuracy': val accuracy (%), 'l2': the penalty chosen on the held-out part of train}."""
  train_f, val_f = (np.asarray(a, np.float32) for a in (train_f, val_f))
  train_y, val_y = np.asarray(train_y, np.int32), np.asarray(val_y, np.int32)
  grid = sorted(float(v) for v in l2_grid)
  held = np.zeros(len(train_f), bool)   # the held-out part of train that chooses the penalty
  held[np.random.default_rng(seed).permutation(len(held))[:max(1, round(holdout * len(held)))]] = True
  best = grid[len(grid) // 2]
  if len(grid) > 1 and (~held).sum() >= 2:
    (x,) = _standardise(train_f[~held], train_f)
    scores = []
    for l2 in grid:   # ties go to the stronger penalty
      w, b = fit(x, train_y, (~held).astype(np.float32), l2, num_classes=num_classes, steps=steps)
      scores.append((_accuracy(w, b, x[held], train_y[held]), l2))
    best = max(scores)[1]
  x, xv = _standardise(train_f, train_f, val_f)
  w, b = fit(x, train_y, np.ones(len(x), np.float32), best, num_classes=num_classes, steps=steps)
  return {"accuracy": _accuracy(w, b, xv, val_y), "l2": best}
