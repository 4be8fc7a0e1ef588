"""Prepare class folders as a TensorFlow Datasets set on disk, offline (no TensorFlow, no download).

  python examples/tfds_from_folders.py SRC DATA_DIR

SRC holds `train/<class>/*.jpg|png` and `val/<class>/*.jpg|png`; the set is written to
DATA_DIR/image_folders/1.0.0 (array_record files, the format `tfds.data_source` reads), labels = the
sorted class folder names. Then train on it with
`--config.data.source=tfds:image_folders --config.data.tfds_data_dir=DATA_DIR` (docs/real-data.md).
The images are stored as their encoded files (tfds re-encodes arrays with TensorFlow, which this
project does not need).
"""

import os
import sys

import tensorflow_datasets as tfds

SPLITS = ("train", "val")   # the split names hw4_jax reads


def _classes(src: str) -> list[str]:
  return sorted(d for d in os.listdir(os.path.join(src, "train")) if not d.startswith("."))


def _builder(src: str, data_dir: str):
  class ImageFolders(tfds.core.GeneratorBasedBuilder):
    """Class folders -> {'image', 'label'} examples, one split per sub-folder of SRC."""
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(None, None, 3)),
          "label": tfds.features.ClassLabel(names=_classes(src))}))

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples(os.path.join(src, split)) for split in SPLITS}

    def _generate_examples(self, folder):
      for label in _classes(src):
        for name in sorted(os.listdir(os.path.join(folder, label))):
          if name.lower().endswith((".jpg", ".jpeg", ".png")):
            yield f"{label}/{name}", {"image": os.path.join(folder, label, name), "label": label}

  return ImageFolders(data_dir=data_dir, file_format="array_record")


def main(src: str, data_dir: str) -> str:
  builder = _builder(src, data_dir)
  builder.download_and_prepare()
  return builder.data_path


if __name__ == "__main__":
  if len(sys.argv) != 3:
    sys.exit(__doc__)
  print(main(sys.argv[1], sys.argv[2]))
