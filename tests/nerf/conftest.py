"""nerf tests run the trainer many times on the same tiny shapes (in subprocesses): a persistent
compilation cache shared by the session and its subprocesses makes the repeats cheap (on a CPU a
training step takes seconds to compile and milliseconds to run)."""

import os
import tempfile

import jax
import pytest


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache():
  path = os.path.join(tempfile.gettempdir(), "hw4_nerf_test_jax_cache")
  saved = {k: os.environ.get(k) for k in ("JAX_COMPILATION_CACHE_DIR",
                                          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
  os.environ["JAX_COMPILATION_CACHE_DIR"] = path          # for `run_main` subprocesses
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  yield
  for key, value in saved.items():
    if value is None:
      os.environ.pop(key, None)
    else:
      os.environ[key] = value
