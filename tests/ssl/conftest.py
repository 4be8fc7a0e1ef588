"""ssl tests compile many small, often identical, programs (settings A/B/C share a step): a persistent
compilation cache for the session makes the repeats free."""

import os
import tempfile

import jax
import pytest


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache():
  path = os.path.join(tempfile.gettempdir(), "hw4_ssl_test_jax_cache")
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  yield
