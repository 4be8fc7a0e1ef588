"""Shared fixtures: the real-data folder (skips when absent) and a compilation cache.

The tests compile many small, often identical, programs, in this process and in the subprocesses
they start (on a CPU a training step takes seconds to compile and milliseconds to run): a persistent
compilation cache shared by the session and its subprocesses makes the repeats cheap.
"""

import os
import pathlib
import tempfile

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("HW4_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> pathlib.Path:
  """`../shared/data` (real data, read-only), or skip: a fresh machine does not have it."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real data not present at {SHARED_DATA}")
  return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache():
  path = os.path.join(tempfile.gettempdir(), "hw4_test_jax_cache")
  saved = {k: os.environ.get(k) for k in ("JAX_COMPILATION_CACHE_DIR",
                                          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
  os.environ["JAX_COMPILATION_CACHE_DIR"] = path          # for subprocesses
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  yield
  for key, value in saved.items():
    if value is None:
      os.environ.pop(key, None)
    else:
      os.environ[key] = value
