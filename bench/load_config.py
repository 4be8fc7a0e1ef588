"""The benchmarks' access to configs/: the folder goes first on sys.path (as `hw4_jax.main` does for
the folder of its --config file) and a config file is imported by its name."""

import importlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")


def load_config(name: str, preset: str = "default"):
  for path in (CONFIGS, ROOT):
    if path not in sys.path:
      sys.path.insert(0, path)
  return importlib.import_module(name).get_config(preset)
