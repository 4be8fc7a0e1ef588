"""Image sets: CSV + flat folder (the course layout), image folders (one sub-folder per class, as
torchvision's ImageFolder, or a flat folder of unlabelled images), and a tfds source.

A dataset here is a grain random-access source whose records are `{'image': uint8 HxWx3, 'label': int32,
'index': int32}`; images (JPEG or PNG, any size and mode: greyscale, CMYK, RGBA are converted to RGB)
are decoded with pillow and resized to the config size on the host, everything else (augmentation,
normalisation) happens on device inside the jitted step. `where` names a source in messages. Bad input
(empty CSV, missing column, unknown label, missing or corrupt image, a folder without images or labels)
raises one `UserError` naming the file and row, or the folder and the config key.
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
    self.where = csv_path
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
    self.where, self.size = f"tfds:{name}[{split}]", size
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


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _image_files(folder: str) -> list[str]:
  """Every JPEG / PNG under `folder` (recursively, hidden names skipped), relative, sorted."""
  found = []
  for root, dirs, names in os.walk(folder, followlinks=True):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    rel = os.path.relpath(root, folder)
    found += [os.path.normpath(os.path.join(rel, n)) for n in names
              if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)]
  return sorted(found)


class FolderImageSource:
  """grain random-access source over an image folder: one sub-folder per class (labels = the sorted
  folder names, torchvision's ImageFolder) or, with `need_label=False`, any folder of images (a flat
  one is unlabelled: every label is 0). `files` are relative to `folder`; `where` is the config key."""

  def __init__(self, folder: str, size: int, vocab: Sequence[str] | None = None, *,
               need_label: bool = True, where: str = ""):
    self.folder, self.size = folder, size
    self.where = f"{where}={folder}" if where else folder
    if not os.path.isdir(folder):
      raise UserError(f"{self.where}: no such image folder")
    self.files = _image_files(folder)
    if not self.files:
      raise UserError(f"{self.where}: no JPEG or PNG images in this folder")
    classes = sorted({f.split(os.sep)[0] for f in self.files if os.sep in f})
    loose = [f for f in self.files if os.sep not in f]
    if need_label:
      if loose or not classes:
        raise UserError(f"{self.where}: {len(loose)} image(s) directly in the folder (e.g. "
                        f"{loose[0]}): labelled images go in one sub-folder per class (the "
                        "ImageFolder layout), or use a CSV id,filename,label")
      empty = [d for d in sorted(os.listdir(folder)) if os.path.isdir(os.path.join(folder, d))
               and not d.startswith(".") and d not in classes]
      if empty:
        raise UserError(f"{self.where}: class folder {empty[0]!r} holds no JPEG or PNG images")
      self.vocab = list(vocab) if vocab is not None else classes
      unknown = [c for c in classes if c not in self.vocab]
      if unknown:
        raise UserError(f"{self.where}: class folder {unknown[0]!r} is not in the training "
                        f"vocabulary ({len(self.vocab)} classes)")
      index = {name: i for i, name in enumerate(self.vocab)}
      self.labels = np.asarray([index[f.split(os.sep)[0]] for f in self.files], np.int32)
    else:
      self.vocab = list(vocab) if vocab is not None else classes
      self.labels = np.zeros(len(self.files), np.int32)

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, i: int) -> dict:
    image = load_image(os.path.join(self.folder, self.files[i]), self.size, self.where)
    return {"image": image, "label": self.labels[i], "index": np.int32(i)}


def has_images(data) -> bool:
  """Whether a `config.data`-like block names a set (a source, a CSV or a folder): an empty `knn`
  block turns the monitor off."""
  return bool(data.get("source", "") or data.get("train_csv", "") or data.get("train_dir", ""))


def check_inputs(data, prefix: str, splits=("train", "val")) -> None:
  """Before any work: every CSV and folder a `config.data`-like block names exists (one UserError
  naming the key and the path: presets that read ../shared/data fail here on another machine)."""
  if str(data.get("source", "") or ""):
    return   # demo (generated) and tfds (checked when opened)
  for split in splits:
    for key, exists, what in ((f"{split}_csv", os.path.isfile, "file"),
                              (f"{split}_dir", os.path.isdir, "folder")):
      path = str(data.get(key, "") or "")
      if path and not exists(path):
        hint = ""
        if "shared/data" in path.replace(os.sep, "/"):
          hint = (" (this preset reads the workplace's real data in ../shared/data: point "
                  f"{prefix}.{key} at your copy" + (
                      f", or set {prefix}.{key}='' and {prefix}.{split}_dir to an image folder)"
                      if key.endswith("_csv") else ")"))
        raise UserError(f"{prefix}.{key}={path}: no such {what}{hint}")


def open_source(data, split: str, size: int, vocab: Sequence[str] | None = None, *,
                need_label: bool = True, prefix: str = "config.data"):
  """The source named by a `config.data`-like ConfigDict for split 'train' or 'val': tfds, a CSV
  and its folder, or (empty CSV key) an image folder."""
  source = str(data.get("source", "") or "")
  if source.startswith("tfds:"):
    return TfdsImageSource(source[len("tfds:"):], split, size, data.get("tfds_data_dir", None),
                           vocab)
  csv_path, image_dir = data[f"{split}_csv"], data[f"{split}_dir"]
  if csv_path:
    return CsvImageSource(csv_path, image_dir, size, vocab, need_label=need_label)
  if image_dir:
    return FolderImageSource(image_dir, size, vocab, need_label=need_label,
                             where=f"{prefix}.{split}_dir")
  raise UserError(f"{prefix}.{split}_csv and {prefix}.{split}_dir are empty: give a CSV and its "
                  "folder, or a folder of images")
