"""Progress of one loop: console lines, TensorBoard scalars/images/text and `metrics.jsonl`.

Only process 0 writes. A console line shows the numbers people watch, the speed of the last interval
and an ETA from the average speed since the first logged step (the first interval holds the
compilation, so it is left out once there is a second point). Scalars whose name starts with
`debug/` (buffer sizes, overflow counters) go to TensorBoard and the JSONL file, not the console.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Mapping

import jax
import numpy as np

from hw4_jax.core import files


def duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Ticker:
  """Progress of a loop over a known number of items (views to score, frames to render, vertices
  to colour): `[name] done/total (pct) | rate | ETA` every `every` items and at the end, the ETA
  from the mean rate since the first item (the first holds the compilation)."""

  def __init__(self, name: str, total: int, unit: str = "items", every: int = 10):
    self.name, self.total, self.unit, self.every = name, int(total), unit, max(int(every), 1)
    self._t0 = time.perf_counter()
    self._first: float | None = None

  def tick(self, done: int, extra: str = "") -> None:
    now = time.perf_counter()
    if done == 1:
      self._first = now
    if not files.is_main_process() or (done % self.every and done != self.total):
      return
    if self._first is not None and done > 1:
      rate = (done - 1) / max(now - self._first, 1e-9)
    else:
      rate = done / max(now - self._t0, 1e-9)
    eta = duration((self.total - done) / rate) if rate > 0 else "?"
    print(f"[{self.name}] {done}/{self.total} {self.unit} ({100 * done / max(self.total, 1):.0f}%)"
          f"{' | ' + extra if extra else ''} | {rate:.2f} {self.unit}/s | ETA {eta}", flush=True)


def _drop_rows_after(path: str, name: str, step: int) -> None:
  """Removes this loop's rows past `step` (written before an interruption, about to be redone)."""
  if not os.path.isfile(path):
    return
  with open(path) as f:
    lines = f.readlines()
  keep = []
  for line in lines:
    try:
      row = json.loads(line)
    except ValueError:
      continue  # a line cut short by a kill
    if not (row.get("stage") == name and int(row.get("step", 0)) > step):
      keep.append(line if line.endswith("\n") else line + "\n")
  if len(keep) != len(lines):
    files.write_text(path, "".join(keep))


class Logger:
  """Console progress + TensorBoard + metrics.jsonl for one loop (`name` tags its rows)."""

  def __init__(self, workdir: str, name: str, total_steps: int, log_every: int = 100,
               start_step: int | None = 0, stream=None):
    """`start_step`: where the loop (re)starts; its rows past it are dropped (None: keep all)."""
    self.workdir, self.name, self.total = workdir, name, int(total_steps)
    self.log_every = max(int(log_every), 1)
    self.stream = stream or sys.stdout
    self._main = files.is_main_process()
    self._writer = self._jsonl = None
    self._last = (time.perf_counter(), int(start_step or 0))   # (time, step) of the last line
    self._first: tuple[float, int] | None = None          # the first logged point
    if self._main:
      os.makedirs(workdir, exist_ok=True)
      jsonl = os.path.join(workdir, "metrics.jsonl")
      if start_step is not None:
        _drop_rows_after(jsonl, name, int(start_step))
      from tensorboardX import SummaryWriter
      self._writer = SummaryWriter(os.path.join(workdir, "tensorboard"))
      self._jsonl = open(jsonl, "a")

  def due(self, step: int) -> bool:
    return step % self.log_every == 0 or step == self.total

  def step(self, step: int, scalars: Mapping[str, Any], force: bool = False) -> bool:
    """Logs `scalars` at `step` when it is a logging step (or forced); returns whether it did."""
    step = int(step)
    if not (force or self.due(step)):
      return False
    values = {k: float(np.asarray(v)) for k, v in jax.device_get(dict(scalars)).items()}
    now = time.perf_counter()
    rate = (step - self._last[1]) / max(now - self._last[0], 1e-9)
    if self._first is None:
      self._first, mean_rate = (now, step), rate
    else:
      mean_rate = (step - self._first[1]) / max(now - self._first[0], 1e-9)
    self._last = (now, step)
    if rate > 0:
      values["debug/steps_per_s"] = rate
    self.scalars(step, values)
    if self._main:
      shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(values.items()) if not k.startswith("debug/"))
      pct = 100.0 * step / max(self.total, 1)
      speed = (f"{rate:.2f} it/s | ETA {duration((self.total - step) / mean_rate)}"
               if rate > 0 and mean_rate > 0 else "resumed")
      print(f"[{self.name}] {step}/{self.total} ({pct:.0f}%) {shown} | {speed}", file=self.stream,
            flush=True)
    return True

  def scalars(self, step: int, values: Mapping[str, Any]) -> None:
    """Writes scalars to TensorBoard (`<name>/<key>`, `debug/<name>/<key>`) and metrics.jsonl."""
    if not self._main:
      return
    values = {k: float(np.asarray(v)) for k, v in values.items()}
    for k, v in values.items():
      tag = f"debug/{self.name}/{k[6:]}" if k.startswith("debug/") else f"{self.name}/{k}"
      self._writer.add_scalar(tag, v, step)
    self._jsonl.write(json.dumps({"stage": self.name, "step": int(step), **values}) + "\n")
    self._jsonl.flush()

  def images(self, step: int, images: Mapping[str, Any]) -> None:
    """HWC [0,1] images to TensorBoard and to `workdir/images/<name>_<tag>_<step>.png`."""
    if not self._main:
      return
    for tag, image in images.items():
      arr = files.to_uint8(image)
      self._writer.add_image(f"{self.name}/{tag}", arr, step, dataformats="HWC")
      files.save_png(os.path.join(self.workdir, "images", f"{self.name}_{tag}_{int(step):06d}.png"),
                     arr)

  def text(self, tag: str, text: str, step: int = 0) -> None:
    if self._main:
      self._writer.add_text(tag, text, step)

  def close(self) -> None:
    if self._main and self._writer is not None:
      self._writer.close()
      self._jsonl.close()
      self._writer = None
