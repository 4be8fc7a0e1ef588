"""Progress lines, TensorBoard event files, metrics.jsonl and atomic outputs (process 0 writes).

`Logger.step` is cheap to call every step: it converts device values (a host sync) only on the
steps it actually logs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Mapping

import jax
import numpy as np


def is_main_process() -> bool:
  return jax.process_index() == 0


def _atomic_write(path: str, data: bytes) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "wb") as f:
    f.write(data)
  os.replace(tmp, path)


def _jsonable(obj: Any) -> Any:
  if isinstance(obj, Mapping):
    return {str(k): _jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  if isinstance(obj, (np.ndarray, jax.Array)):
    return _jsonable(np.asarray(obj).tolist()) if np.ndim(obj) else _jsonable(np.asarray(obj).item())
  if isinstance(obj, np.generic):
    return obj.item()
  return obj


def write_json(path: str, obj: Any) -> None:
  """Writes JSON atomically (tmp + rename), on process 0 only."""
  if is_main_process():
    _atomic_write(path, (json.dumps(_jsonable(obj), indent=2) + "\n").encode())


def write_text(path: str, text: str) -> None:
  if is_main_process():
    _atomic_write(path, text.encode())


def to_uint8(image: Any) -> np.ndarray:
  return (np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_png(path: str, image: Any) -> None:
  """Saves an HWC float [0,1] (or uint8) image as PNG atomically, on process 0 only."""
  if not is_main_process():
    return
  import io
  from PIL import Image
  arr = np.asarray(image)
  arr = arr if arr.dtype == np.uint8 else to_uint8(arr)
  buf = io.BytesIO()
  Image.fromarray(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[-1] == 1 else arr).save(buf, "PNG")
  _atomic_write(path, buf.getvalue())


def _duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Logger:
  """Console progress + TensorBoard + metrics.jsonl for one loop (`name` tags the stage)."""

  def __init__(self, workdir: str, name: str, total_steps: int, log_every: int = 100,
               stream=None):
    self.workdir, self.name, self.total = workdir, name, int(total_steps)
    self.log_every = max(int(log_every), 1)
    self.stream = stream or sys.stdout
    self._main = is_main_process()
    self._writer = None
    self._last_time = None
    self._last_step = None
    self._jsonl = None
    if self._main:
      os.makedirs(workdir, exist_ok=True)
      from tensorboardX import SummaryWriter
      self._writer = SummaryWriter(os.path.join(workdir, "tensorboard"))
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")

  def start(self, step: int) -> None:
    """Marks the start (or resume) point for the speed and ETA estimates."""
    self._last_time, self._last_step = time.perf_counter(), int(step)

  def step(self, step: int, scalars: Mapping[str, Any], force: bool = False) -> bool:
    """Logs `scalars` at `step` when it is a logging step; returns whether it logged."""
    step = int(step)
    if not (force or step % self.log_every == 0 or step == self.total):
      return False
    values = {k: float(np.asarray(v)) for k, v in jax.device_get(dict(scalars)).items()}
    now = time.perf_counter()
    if self._last_time is None:
      self.start(step)
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_time, self._last_step = now, step
    if rate > 0:
      values.setdefault("steps_per_s", rate)
    self.scalars(step, values)
    if self._main:
      shown = " ".join(f"{k}={v:.4g}" for k, v in values.items() if k != "steps_per_s")
      eta = (self.total - step) / rate if rate > 0 else float("nan")
      pct = 100.0 * step / max(self.total, 1)
      speed = f"{rate:.2f} it/s | ETA {_duration(eta)}" if rate > 0 else "resumed"
      print(f"[{self.name}] {step}/{self.total} ({pct:.0f}%) {shown} | {speed}",
            file=self.stream, flush=True)
    return True

  def scalars(self, step: int, values: Mapping[str, Any]) -> None:
    """Writes scalars to TensorBoard and metrics.jsonl without printing."""
    if not self._main:
      return
    values = {k: float(np.asarray(v)) for k, v in values.items()}
    for k, v in values.items():
      self._writer.add_scalar(f"{self.name}/{k}", v, step)
    self._jsonl.write(json.dumps({"stage": self.name, "step": int(step), **values}) + "\n")
    self._jsonl.flush()

  def images(self, step: int, images: Mapping[str, Any]) -> None:
    """HWC [0,1] images to TensorBoard and to `workdir/images/<stage>_<tag>_<step>.png`."""
    if not self._main:
      return
    for tag, image in images.items():
      arr = to_uint8(image)
      self._writer.add_image(f"{self.name}/{tag}", arr, step, dataformats="HWC")
      save_png(os.path.join(self.workdir, "images", f"{self.name}_{tag}_{int(step):06d}.png"), arr)

  def close(self) -> None:
    if self._main:
      self._writer.close()
      self._jsonl.close()
