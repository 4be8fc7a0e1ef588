"""The matmul convolution against XLA's own convolution and its autodiff gradient."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hw4_jax.ssl import conv, pool, resnet


def _reference(x, kernel, stride, padding):
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("k,stride,size,cin,cout,batch", [
    (1, 1, 8, 6, 10, 2),   # 1x1, fewer input channels: the weight gradient transposes x
    (1, 1, 8, 10, 4, 2),   # 1x1, fewer output channels: it transposes dy
    (1, 2, 9, 5, 7, 3),    # strided 1x1 (ResNet downsample), odd size, odd batch (one matmul)
    (3, 1, 7, 4, 6, 2),
    (3, 2, 8, 5, 3, 2),
    (3, 2, 9, 3, 5, 2),    # strided 3x3, odd size: the last row/column of taps is partial
    (7, 2, 12, 3, 8, 2),   # the stem
])
def test_conv2d_gemm_matches_xla(k, stride, size, cin, cout, batch):
  kx, kw, kd = jax.random.split(jax.random.PRNGKey(k * 100 + stride * 10 + size), 3)
  x = jax.random.normal(kx, (batch, size, size + 1, cin))
  kernel = jax.random.normal(kw, (k, k, cin, cout))
  padding = conv.explicit_padding("SAME" if k == 1 else ((k // 2, k // 2),) * 2, x.shape[1:3],
                                  (k, k), stride)
  y, vjp = jax.vjp(lambda a, b: conv.conv2d_gemm(a, b, stride, padding), x, kernel)
  y_ref, vjp_ref = jax.vjp(lambda a, b: _reference(a, b, stride, padding), x, kernel)
  np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
  dy = jax.random.normal(kd, y.shape)
  for got, want in zip(vjp(dy), vjp_ref(dy)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv_module_has_nn_conv_parameters():
  x = jnp.ones((1, 8, 8, 3))
  ours = conv.Conv(5, (3, 3), 2, padding=((1, 1), (1, 1)), algorithm="gemm")
  flax_conv = nn.Conv(5, (3, 3), 2, padding=((1, 1), (1, 1)), use_bias=False)
  p_ours = ours.init(jax.random.PRNGKey(0), x)
  p_flax = flax_conv.init(jax.random.PRNGKey(0), x)
  assert jax.tree.map(jnp.shape, p_ours) == jax.tree.map(jnp.shape, p_flax)
  np.testing.assert_allclose(ours.apply(p_flax, x), flax_conv.apply(p_flax, x), atol=1e-5)


def test_resnet_gradients_do_not_depend_on_the_conv_and_pool_implementation():
  # 64 px and batch 4: BatchNorm over 2x2 maps, not 1x1 maps of 2 examples, which would amplify
  # float32 rounding differences between the two forward passes into percent-level gradient noise.
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 64, 64, 3))
  nets = {impl: resnet.make_backbone("resnet18", width=8, conv=impl) for impl in ("xla", "gemm")}
  # ... nor on the stem pool's (flax's max_pool vs hw4_jax.ssl.pool's hand-written gradient).
  assert nets["xla"].pool is None and nets["gemm"].pool is pool.max_pool_3x3_s2
  variables = nets["xla"].init(jax.random.PRNGKey(0), x, train=False)

  def grads(net):
    def loss(params):
      y, _ = net.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, train=True,
                       mutable=["batch_stats"])
      return jnp.sum(jnp.sin(y))
    return jax.jit(jax.grad(loss))(variables["params"])

  g_xla, g_gemm = grads(nets["xla"]), grads(nets["gemm"])
  assert jax.tree.structure(g_xla) == jax.tree.structure(g_gemm)
  for a, b in zip(jax.tree.leaves(g_xla), jax.tree.leaves(g_gemm)):
    # Relative to each gradient's scale: summation order differs, so near-zero entries differ more.
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * float(np.max(np.abs(a))))
  with pytest.raises(ValueError, match="config.model.conv"):
    conv.conv_module("cudnn")
