"""Cross-entropy training on labelled images: the step shared by supervised pre-training (setting B's
backbone: backbone + linear layer) and the classifier (settings A-E: backbone + MLP head)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from hw4_jax.ssl import augment


class LinearClassifierNet(nn.Module):
  """Backbone + one linear layer (setting B's pre-training), float32 logits."""
  backbone: nn.Module
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = True):
    return nn.Dense(self.num_classes, name="fc", dtype=self.backbone.dtype)(
        self.backbone(x, train=train)).astype(jnp.float32)


def step_fn(net, aug_cfg, lr, frozen: bool = False):
  """One cross-entropy step. `frozen`: the backbone runs BatchNorm in inference mode, so its
  statistics stay as loaded (its params get no update from the optimizer, see classifier.build).
  `state.model_state` is the net's `batch_stats`; dropout draws from its own step key."""

  def step(state, batch):
    x = augment.augment_batch(state.step_rng(0), batch["image"], aug_cfg)
    rngs = {"dropout": state.step_rng(1)}

    def loss_fn(params):
      variables = {"params": params, "batch_stats": state.model_state}
      if frozen:  # inference-mode BatchNorm: nothing to update
        logits, stats = net.apply(variables, x, train=True, rngs=rngs), state.model_state
      else:
        logits, new = net.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])
        stats = new["batch_stats"]
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
      return loss, (logits, stats)

    (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    lr_now = lr(state.step)
    state = state.apply_gradients(grads, model_state=stats)
    acc = jnp.mean(jnp.argmax(logits, -1) == batch["label"]) * 100.0
    return state, {"loss": loss, "train_accuracy": acc, "lr": lr_now}

  return step
