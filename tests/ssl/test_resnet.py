"""ResNet layout: torchvision's parameter counts, feature sizes, bf16 compute with fp32 params."""

import jax
import jax.numpy as jnp

from hw4_jax.ssl import resnet


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


def test_resnet50_parameter_count():
  model = resnet.make_backbone("resnet50", num_classes=1000)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)),
                                             train=False))
  assert _count(shapes["params"]) == 25_557_032  # torchvision.models.resnet50()
  # Stride on the 3x3 conv (torchvision v1.5): the first block of stage 2 has a 3x3 stride-2 conv.
  block = model.clone(num_classes=None)
  assert resnet.feature_dim("resnet50") == 2048
  out = jax.eval_shape(lambda: block.init_with_output(jax.random.PRNGKey(0),
                                                      jnp.zeros((1, 128, 128, 3)), train=False))
  assert out[0].shape == (1, 2048)


def test_resnet18_parameter_count():
  model = resnet.make_backbone("resnet18", num_classes=1000)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)),
                                             train=False))
  assert _count(shapes["params"]) == 11_689_512  # torchvision.models.resnet18()


def test_bf16_compute_fp32_params():
  model = resnet.make_backbone("resnet18", width=8, dtype="bfloat16")
  x = jnp.ones((2, 64, 64, 3))
  variables = jax.jit(lambda k: model.init(k, x, train=False))(jax.random.PRNGKey(0))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["batch_stats"]))
  y, new = jax.jit(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables)
  assert y.shape == (2, 64) and y.dtype == jnp.float32
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(new["batch_stats"]))
