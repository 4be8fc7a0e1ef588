"""Labeled image sets: CSV + flat folder (the course layout), a tfds source, and the generated demo set.

A dataset here is a grain random-access source whose records are `{'image': uint8 HxWx3, 'label': int32,
'index': int32}`; images are decoded with pillow and resized to the config size on the host, everything
else (augmentation, normalisation) happens on device inside the jitted step. Bad input (empty CSV,
missing column, unknown label, missing or corrupt image) raises one `UserError` naming file and row.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from typing import Sequence

import numpy as np
from PIL import Image

from hw4_jax.core.errors import UserError

REQUIRED_COLUMNS = ("id", "filename", "label")


@dataclasses.dataclass(frozen=True)
class Row:
  id: str
  filename: str
  label: str
  line: int  # 1-based line number in the CSV (the header is line 1)


def _csv_text(path: str) -> str:
  """The CSV's text: UTF-8, with or without the byte-order mark Excel writes."""
  with open(path, "rb") as f:
    data = f.read()
  try:
    return data.decode("utf-8-sig")
  except UnicodeDecodeError as err:
    line = data[:err.start].count(b"\n") + 1
    raise UserError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); save "
                    "it as UTF-8") from None


def read_csv(path: str, *, need_label: bool = True) -> list[Row]:
  """Rows of an `id,filename,label` CSV; `need_label=False` accepts a CSV without labels (predict).

  A `filename` must be a relative path inside the image folder."""
  if not os.path.isfile(path):
    raise UserError(f"{path}: no such CSV file")
  with io.StringIO(_csv_text(path), newline="") as f:
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
      raise UserError(f"{path}: empty CSV (expected header id,filename,label)")
    header = [h.strip() for h in header]
    need = REQUIRED_COLUMNS if need_label else REQUIRED_COLUMNS[:2]
    missing = [c for c in need if c not in header]
    if missing:
      raise UserError(f"{path}: row 1: missing column(s) {', '.join(missing)} (header is {header})")
    col = {c: header.index(c) for c in REQUIRED_COLUMNS if c in header}
    rows = []
    for line, rec in enumerate(reader, start=2):
      if not rec or all(not v.strip() for v in rec):
        continue
      if len(rec) < len(header):
        raise UserError(f"{path}: row {line}: expected {len(header)} fields, got {len(rec)}")
      label = rec[col["label"]].strip() if "label" in col else ""
      if need_label and not label:
        raise UserError(f"{path}: row {line}: empty label")
      filename = rec[col["filename"]].strip()
      if not filename:
        raise UserError(f"{path}: row {line}: empty filename")
      norm = os.path.normpath(filename)
      if os.path.isabs(filename) or norm == ".." or norm.startswith(".." + os.sep):
        raise UserError(f"{path}: row {line}: filename {filename!r} is not a path inside the image "
                        "folder")
      rows.append(Row(rec[col["id"]].strip(), filename, label, line))
  if not rows:
    raise UserError(f"{path}: empty CSV (a header but no rows)")
  return rows


def build_vocab(rows: Sequence[Row]) -> list[str]:
  """The class vocabulary: the sorted set of the training labels (index = class id)."""
  return sorted({r.label for r in rows})


def encode_labels(rows: Sequence[Row], vocab: Sequence[str], csv_path: str) -> np.ndarray:
  """Class ids of the rows; a label outside the vocabulary is a UserError naming file and row."""
  index = {name: i for i, name in enumerate(vocab)}
  out = np.empty(len(rows), np.int32)
  for i, r in enumerate(rows):
    if r.label not in index:
      raise UserError(f"{csv_path}: row {r.line}: label {r.label!r} is not in the training "
                      f"vocabulary ({len(vocab)} classes)")
    out[i] = index[r.label]
  return out


def save_vocab(path: str, vocab: Sequence[str]) -> None:
  from hw4_jax.core import files
  files.write_json(path, {"vocab": list(vocab)})


def load_vocab(path: str) -> list[str]:
  if not os.path.isfile(path):
    raise UserError(f"{path}: no vocabulary file (was this workdir trained?)")
  with open(path) as f:
    return list(json.load(f)["vocab"])


def load_image(path: str, size: int, where: str) -> np.ndarray:
  """Decode one image to uint8 size x size x 3 (a bilinear resize of the whole image, as the reference
  report does)."""
  try:
    with Image.open(path) as im:
      im = im.convert("RGB")
      if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
      return np.asarray(im, np.uint8)
  except FileNotFoundError:
    raise UserError(f"{where}: image {path} not found") from None
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise UserError(f"{where}: image {path} cannot be decoded ({e})") from None


class CsvImageSource:
  """grain random-access source over a CSV + folder; records carry the label id and the row index."""

  def __init__(self, csv_path: str, image_dir: str, size: int, vocab: Sequence[str] | None = None,
               *, need_label: bool = True, check_files: bool = True):
    self.csv_path, self.image_dir, self.size = csv_path, image_dir, size
    self.rows = read_csv(csv_path, need_label=need_label)
    if not os.path.isdir(image_dir):
      raise UserError(f"{image_dir}: no such image folder (for {csv_path})")
    if check_files:  # fail before training starts, not hours into it
      for r in self.rows:
        if not os.path.isfile(os.path.join(image_dir, r.filename)):
          raise UserError(f"{csv_path}: row {r.line}: image {os.path.join(image_dir, r.filename)} "
                          "not found")
    self.vocab = list(vocab) if vocab is not None else build_vocab(self.rows)
    self.labels = (encode_labels(self.rows, self.vocab, csv_path) if need_label
                   else np.zeros(len(self.rows), np.int32))

  def __len__(self) -> int:
    return len(self.rows)

  def __getitem__(self, i: int) -> dict:
    r = self.rows[i]
    image = load_image(os.path.join(self.image_dir, r.filename), self.size,
                       f"{self.csv_path}: row {r.line}")
    return {"image": image, "label": self.labels[i], "index": np.int32(i)}


class TfdsImageSource:
  """A prepared tfds dataset (`config.data.source='tfds:<name>'`) read with `tfds.data_source`, no TF."""

  def __init__(self, name: str, split: str, size: int, data_dir: str | None = None,
               vocab: Sequence[str] | None = None):
    import tensorflow_datasets as tfds
    try:
      self._src = tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
      info = tfds.builder(name, data_dir=data_dir or None).info
    except Exception as e:  # tfds raises several types for a missing / unprepared dataset
      first = (str(e).strip().splitlines() or [""])[0]   # (tfds appends a list of every dataset)
      raise UserError(f"tfds:{name} split {split!r}: cannot open ({type(e).__name__}: "
                      f"{first[:200]})") from None
    self.csv_path, self.size = f"tfds:{name}[{split}]", size
    names = list(info.features["label"].names)
    self.vocab = list(vocab) if vocab is not None else names
    if self.vocab != names:
      raise UserError(f"tfds:{name}: label names differ from the training vocabulary")

  def __len__(self) -> int:
    return len(self._src)

  def __getitem__(self, i: int) -> dict:
    rec = self._src[i]
    image = np.asarray(rec["image"], np.uint8)
    if image.ndim == 2 or image.shape[-1] == 1:
      image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=-1)
    if image.shape[:2] != (self.size, self.size):
      image = np.asarray(Image.fromarray(image[..., :3]).resize((self.size, self.size),
                                                                Image.BILINEAR))
    return {"image": image[..., :3], "label": np.int32(rec["label"]), "index": np.int32(i)}

  @property
  def labels(self) -> np.ndarray:
    return np.asarray([int(self._src[i]["label"]) for i in range(len(self))], np.int32)


def open_source(data, split: str, size: int, vocab: Sequence[str] | None = None, *,
                need_label: bool = True):
  """The source named by a `config.data`-like ConfigDict for split 'train' or 'val'."""
  source = str(data.get("source", "") or "")
  if source.startswith("tfds:"):
    return TfdsImageSource(source[len("tfds:"):], split, size, data.get("tfds_data_dir", None),
                           vocab)
  csv_path, image_dir = data[f"{split}_csv"], data[f"{split}_dir"]
  if not csv_path:
    raise UserError(f"config.data.{split}_csv is empty")
  return CsvImageSource(csv_path, image_dir, size, vocab, need_label=need_label)
