"""hw4-jax: DVGO radiance fields and BYOL transfer learning in JAX/Flax."""

__version__ = "0.1.0"
