"""Config presets chosen by name (`--config=configs/x.py:preset`), with a one-line error for a typo."""

from __future__ import annotations

from typing import Callable, Mapping

import ml_collections


def choose(arg: str | None, presets: Mapping[str, Callable[[], ml_collections.ConfigDict]],
           default: str = "default") -> ml_collections.ConfigDict:
  """Builds the preset named `arg` (None or '' means `default`)."""
  name = arg or default
  if name not in presets:
    raise ValueError(f"unknown preset '{name}'; valid presets: {', '.join(presets)}")
  config = presets[name]()
  config.preset = name
  return config
