"""BYOL: the online network (backbone + projector + predictor), the loss, the EMA target, the step.

The target network is not a second model object: it is an exponential moving average of the online
backbone + projector parameters kept *inside the optax state* (`ema_target`, chained last), so one
`TrainState` carries everything, checkpoints restore it, and `jit` donates it. The target's BatchNorm
statistics are its own (updated by its own forward pass) and live in `model_state['target']`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from hw4_jax.core.state import TrainState
from hw4_jax.ssl import augment, optim, resnet

TARGET_KEYS = ("backbone", "projector")


class ProjectionHead(nn.Module):
  """BYOL's projector / predictor: Linear(hidden) -> BN -> ReLU -> Linear(out), computed in `dtype`
  (float32 parameters and BatchNorm statistics)."""
  hidden: int = 4096
  out: int = 256
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.Dense(self.hidden, dtype=self.dtype)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype)(x)
    return nn.Dense(self.out, dtype=self.dtype)(nn.relu(x))


class BYOLNet(nn.Module):
  """Online network. `predict=False` runs backbone + projector only (the target's shape)."""
  backbone: nn.Module
  hidden: int = 4096
  out: int = 256

  def setup(self):
    self.projector = ProjectionHead(self.hidden, self.out, self.backbone.dtype)
    self.predictor = ProjectionHead(self.hidden, self.out, self.backbone.dtype)

  def __call__(self, x, train: bool = True, predict: bool = True):
    z = self.projector(self.backbone(x, train=train), train=train)
    return self.predictor(z, train=train) if predict else z


def regression_loss(p, z):
  """2 - 2 cos(p, z) per example (BYOL eq. 2), in float32."""
  p = p.astype(jnp.float32)
  z = z.astype(jnp.float32)
  p = p / jnp.maximum(jnp.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
  z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
  return 2.0 - 2.0 * jnp.sum(p * z, axis=-1)


def byol_loss(p1, p2, z1, z2):
  """Symmetric BYOL loss: view 1's prediction against view 2's target projection, and vice versa."""
  z1, z2 = jax.lax.stop_gradient(z1), jax.lax.stop_gradient(z2)
  return jnp.mean(regression_loss(p1, z2) + regression_loss(p2, z1))


def tau_schedule(tau_base: float, total_steps: int, kind: str = "cosine"):
  """The target's EMA rate for the k-th update, k = 0..K-1.

  `constant`: tau_base at every update (byol-pytorch's `moving_average_decay`, which the reference
  report used). `cosine` (the BYOL paper): tau(k) = 1 - (1 - tau_base) (cos(pi k / (K - 1)) + 1) / 2,
  so the first update uses exactly `tau_base` and the last exactly 1. (Dividing by K instead, as
  several implementations do, never reaches 1 because k stops at K - 1.)
  """
  if kind == "constant":
    return lambda count: jnp.full((), tau_base, jnp.float32)
  denom = max(int(total_steps) - 1, 1)

  def tau(count):
    k = jnp.minimum(jnp.asarray(count, jnp.float32), denom)
    return 1.0 - (1.0 - tau_base) * (jnp.cos(math.pi * k / denom) + 1.0) / 2.0

  return tau


class EmaTargetState(NamedTuple):
  count: jax.Array  # number of updates done so far (the k of the next update)
  target: Any       # EMA of params[k] for k in TARGET_KEYS
  tau: jax.Array    # tau used by the last update (for logging)


def ema_target(tau_fn, keys=TARGET_KEYS) -> optax.GradientTransformation:
  """Chain this LAST: leaves updates unchanged and moves the target towards the *new* online params.

  target <- tau * target + (1 - tau) * (params + updates), with tau = tau_fn(count).
  """

  def pick(tree):
    return {k: tree[k] for k in keys}

  def init(params):
    return EmaTargetState(jnp.zeros((), jnp.int32), jax.tree.map(jnp.array, pick(params)),
                          jnp.asarray(tau_fn(0), jnp.float32))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("ema_target needs params (call tx.update(grads, opt_state, params))")
    tau = tau_fn(state.count)
    new_online = optax.apply_updates(pick(params), pick(updates))
    target = jax.tree.map(lambda t, o: tau * t + (1.0 - tau) * o, state.target, new_online)
    return updates, EmaTargetState(state.count + 1, target, jnp.asarray(tau, jnp.float32))

  return optax.GradientTransformation(init, update)


def find_target(opt_state) -> EmaTargetState:
  """The EmaTargetState inside a (possibly nested) optax chain state."""
  if isinstance(opt_state, EmaTargetState):
    return opt_state
  if isinstance(opt_state, (tuple, list)):
    for s in opt_state:
      found = find_target(s)
      if found is not None:
        return found
  return None


def byol_net(config) -> BYOLNet:
  return BYOLNet(resnet.from_config(config.model), config.byol.hidden_dim, config.byol.proj_dim)


def build(config, steps: int, rng):
  """(net, TrainState, lr schedule) for BYOL at step 0 (its backbone = pretrain.initial_backbone)."""
  net = byol_net(config)
  variables = resnet.init_variables(net, config.augment.crop_size, rng)
  base, lr = optim.make_optimizer(config.optim, steps, config.train.batch_size)
  parts = [base]
  mult = float(config.byol.get("predictor_lr_mult", 1.0))
  if mult != 1.0:  # a faster predictor (DirectPred / SimSiam: the predictor should track the projector)
    parts.append(optax.masked(optax.scale(mult), lambda p: {k: k == "predictor" for k in p}))
  tau = tau_schedule(config.byol.tau_base, steps, config.byol.get("tau_schedule", "cosine"))
  tx = optax.chain(*parts, ema_target(tau))
  stats = variables["batch_stats"]
  state = TrainState.create(params=variables["params"], tx=tx, rng=jax.random.PRNGKey(config.seed),
                            model_state={"online": stats,
                                         "target": jax.tree.map(jnp.array,  # own buffers
                                                                {k: stats[k] for k in TARGET_KEYS})})
  return net, state, lr


def step_fn(net, aug_cfg, lr):
  """The pure BYOL step: two augmented views, symmetric loss, online update, EMA target update."""

  def step(state, batch):
    k1, k2 = jax.random.split(state.step_rng())
    images_u8 = batch["image"]
    x = jnp.concatenate([augment.augment_batch(k1, images_u8, aug_cfg),
                         augment.augment_batch(k2, images_u8, aug_cfg)])
    target = find_target(state.opt_state)
    z, t_vars = net.apply({"params": target.target, "batch_stats": state.model_state["target"]}, x,
                          train=True, predict=False, mutable=["batch_stats"])

    def loss_fn(params):
      p, o_vars = net.apply({"params": params, "batch_stats": state.model_state["online"]}, x,
                            train=True, mutable=["batch_stats"])
      p1, p2 = jnp.split(p, 2)
      z1, z2 = jnp.split(z, 2)
      return byol_loss(p1, p2, z1, z2), o_vars["batch_stats"]

    (loss, online_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    lr_now = lr(state.step)
    state = state.apply_gradients(grads, model_state={"online": online_stats,
                                                      "target": t_vars["batch_stats"]})
    return state, {"loss": loss, "tau": find_target(state.opt_state).tau, "lr": lr_now}

  return step
