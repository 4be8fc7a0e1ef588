"""Shared fixtures: the real-data folder (skips when absent) and a temporary workdir."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("HW4_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> pathlib.Path:
  """`../shared/data` (real data, read-only), or skip: a fresh machine does not have it."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real data not present at {SHARED_DATA}")
  return SHARED_DATA
