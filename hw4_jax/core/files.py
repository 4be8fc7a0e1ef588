"""Output files, written atomically (temp file in the same folder, then rename) and by process 0 only.

`atomic_path` is the one atomic writer: every output of the project (JSON, text, PNG, npz, msgpack,
GIF/MP4, plots) goes through it, so an interrupted run never leaves a half-written file under its
final name. The temp name keeps the extension, for libraries that pick the format from it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any, Iterator, Mapping

import jax
import numpy as np


def is_main_process() -> bool:
  return jax.process_index() == 0


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temp path to write `path`'s content to; renames it to `path` when the block succeeds
  (and removes it when the block fails). Every process may use it (e.g. a shared demo set)."""
  folder, name = os.path.split(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  stem, ext = os.path.splitext(name)
  tmp = os.path.join(folder, f".{stem}.tmp{os.getpid()}{ext}")
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


@contextlib.contextmanager
def atomic_dir(path: str) -> Iterator[str]:
  """`atomic_path` for a folder: the block fills a temp folder that becomes `path` (if another
  process created `path` meanwhile, theirs is kept and ours discarded)."""
  import shutil
  import tempfile
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp", dir=parent)
  try:
    yield tmp
    try:
      os.rename(tmp, path)
    except OSError:   # another process finished first
      pass
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp, ignore_errors=True)


def read_json_object(path: str, what: str) -> dict:
  """A JSON file holding an object, or a UserError naming the file and `what` it should be."""
  from hw4_jax.core.errors import UserError
  try:
    with open(path) as f:
      value = json.load(f)
  except (OSError, ValueError) as err:
    raise UserError(f"{path}: not a readable JSON file ({err})") from None
  if not isinstance(value, dict):
    raise UserError(f"{path}: expected a JSON object ({what})")
  return value


def write_bytes(path: str, data: bytes, all_processes: bool = False) -> None:
  if all_processes or is_main_process():
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
      f.write(data)


def write_text(path: str, text: str) -> None:
  write_bytes(path, text.encode())


def jsonable(obj: Any) -> Any:
  """Arrays and numpy scalars -> lists / Python numbers, recursively."""
  if isinstance(obj, Mapping):
    return {str(k): jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [jsonable(v) for v in obj]
  if isinstance(obj, (np.ndarray, jax.Array)):
    return jsonable(np.asarray(obj).tolist()) if np.ndim(obj) else jsonable(np.asarray(obj).item())
  if isinstance(obj, np.generic):
    return obj.item()
  return obj


def write_json(path: str, obj: Any) -> None:
  write_text(path, json.dumps(jsonable(obj), indent=2) + "\n")


def to_uint8(image: Any) -> np.ndarray:
  """[0, 1] floats (or uint8) -> uint8, rounded."""
  arr = np.asarray(image)
  if arr.dtype == np.uint8:
    return arr
  return (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_png(path: str, image: Any) -> None:
  """An HWC float [0, 1] (or uint8) image as PNG."""
  if not is_main_process():
    return
  from PIL import Image
  arr = to_uint8(image)
  buf = io.BytesIO()
  Image.fromarray(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[-1] == 1 else arr).save(buf, "PNG")
  write_bytes(path, buf.getvalue())
