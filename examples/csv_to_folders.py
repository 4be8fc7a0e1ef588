"""Re-lay a CSV set (the course layout: SPLIT.csv `id,filename,label` + SPLIT/) as class folders.

  python examples/csv_to_folders.py SRC DST [--copy]

For each split with SRC/<split>.csv (train, val), links (or with --copy, copies) every image to
DST/<split>/<label>/<filename>: the ImageFolder layout `data.train_dir` / `data.val_dir` read when
their CSV key is empty, and what examples/tfds_from_folders.py prepares for tfds.
"""

import csv
import os
import shutil
import sys


def main(src: str, dst: str, copy: bool = False) -> dict:
  """{split: images written}."""
  counts = {}
  for split in ("train", "val"):
    table = os.path.join(src, f"{split}.csv")
    if not os.path.isfile(table):
      continue
    with open(table, newline="", encoding="utf-8-sig") as f:
      rows = list(csv.DictReader(f))
    for row in rows:
      folder = os.path.join(dst, split, row["label"])
      os.makedirs(folder, exist_ok=True)
      source = os.path.abspath(os.path.join(src, split, row["filename"]))
      target = os.path.join(folder, os.path.basename(row["filename"]))
      if not os.path.lexists(target):
        shutil.copy(source, target) if copy else os.symlink(source, target)
    counts[split] = len(rows)
  return counts


if __name__ == "__main__":
  args = [a for a in sys.argv[1:] if a != "--copy"]
  if len(args) != 2:
    sys.exit(__doc__)
  print(main(args[0], args[1], copy="--copy" in sys.argv))
