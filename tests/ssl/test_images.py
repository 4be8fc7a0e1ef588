"""Datasets and bad input: CSV parsing, vocabulary, and one UserError naming file and row."""

import os

import numpy as np
import pytest

from hw4_jax.core.errors import UserError
from hw4_jax.ssl import demo, images, pipeline
from tests.helpers import run_main


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory):
  root = tmp_path_factory.mktemp("demo")
  return demo.make_demo_set(str(root), size=32, train_per_class=6, val_per_class=2)


def _write(path, text):
  with open(path, "w") as f:
    f.write(text)
  return str(path)


def test_csv_source_and_vocab(demo_set):
  src = images.CsvImageSource(demo_set["train_csv"], demo_set["train_dir"], 24)
  assert src.vocab == sorted(demo.CLASSES) and len(src) == 24
  rec = src[5]
  assert rec["image"].shape == (24, 24, 3) and rec["image"].dtype == np.uint8
  assert src.vocab[rec["label"]] == src.rows[5].label
  val = images.CsvImageSource(demo_set["val_csv"], demo_set["val_dir"], 24, vocab=src.vocab)
  assert val.vocab == src.vocab


def test_vocab_save_restore(tmp_path):
  vocab = ["b", "a", "c"]
  images.save_vocab(str(tmp_path / "vocab.json"), vocab)
  assert images.load_vocab(str(tmp_path / "vocab.json")) == vocab
  rows = [images.Row("0", "x.jpg", "z", 2), images.Row("1", "y.jpg", "a", 3)]
  assert images.build_vocab(rows) == ["a", "z"]


def test_empty_csv(tmp_path):
  with pytest.raises(UserError, match=r"empty\.csv: empty CSV"):
    images.read_csv(_write(tmp_path / "empty.csv", ""))
  with pytest.raises(UserError, match=r"header\.csv: empty CSV"):
    images.read_csv(_write(tmp_path / "header.csv", "id,filename,label\n"))
  with pytest.raises(UserError, match=r"cols\.csv: row 1: missing column\(s\) label"):
    images.read_csv(_write(tmp_path / "cols.csv", "id,filename\n0,a.jpg\n"))


def test_unknown_val_label(tmp_path, demo_set):
  csv = _write(tmp_path / "val.csv", "id,filename,label\n0,circle00000.jpg,circle\n"
                                     "1,square00000.jpg,hexagon\n")
  with pytest.raises(UserError, match=r"val\.csv: row 3: label 'hexagon' is not in the training"):
    images.CsvImageSource(csv, demo_set["val_dir"], 24, vocab=list(demo.CLASSES))


def test_missing_image(tmp_path, demo_set):
  csv = _write(tmp_path / "m.csv", "id,filename,label\n0,circle00000.jpg,circle\n"
                                   "1,nothere.jpg,circle\n")
  with pytest.raises(UserError, match=r"m\.csv: row 3: image .*nothere\.jpg not found"):
    images.CsvImageSource(csv, demo_set["val_dir"], 24)


def test_corrupt_image_through_pipeline(tmp_path):
  folder = tmp_path / "imgs"
  folder.mkdir()
  from PIL import Image
  for i in range(4):
    Image.new("RGB", (10, 10), (i * 40, 0, 0)).save(folder / f"ok{i}.png")
  _write(folder / "bad.jpg", "this is not a jpeg")
  rows = "".join(f"{i},ok{i}.png,a\n" for i in range(4)) + "4,bad.jpg,b\n"
  csv = _write(tmp_path / "c.csv", "id,filename,label\n" + rows)
  src = images.CsvImageSource(csv, str(folder), 8)
  with pytest.raises(UserError, match=r"c\.csv: row 6: image .*bad\.jpg cannot be decoded"):
    list(pipeline.eval_batches(src, 2, num_threads=2))


def test_bad_input_via_main_one_line(tmp_path):
  """main prints one `error:` line naming file and row, exits 2 and leaves no workdir behind."""
  folder = tmp_path / "imgs"
  folder.mkdir()
  csv = _write(tmp_path / "train.csv", "id,filename,label\n0,missing.jpg,a\n")
  workdir = tmp_path / "run"
  proc = run_main("--config=configs/classifier.py:demo", f"--workdir={workdir}",
                  "--config.data.source=", f"--config.data.train_csv={csv}",
                  f"--config.data.train_dir={folder}", f"--config.data.val_csv={csv}",
                  f"--config.data.val_dir={folder}", timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "train.csv: row 2: image" in errors[0] and "missing.jpg" in errors[0]
  assert "Traceback" not in proc.stderr
  assert not os.path.exists(workdir)


def test_eval_batches_cover_each_example_once(demo_set):
  src = images.CsvImageSource(demo_set["val_csv"], demo_set["val_dir"], 16)
  seen = []
  for b in pipeline.eval_batches(src, 3, num_threads=2):
    assert b["image"].shape == (3, 16, 16, 3)
    seen.extend(b["index"][b["mask"]].tolist())
  assert sorted(seen) == list(range(len(src)))


def test_train_iterator_resumes_exactly(demo_set):
  src = images.CsvImageSource(demo_set["train_csv"], demo_set["train_dir"], 16)
  it = pipeline.train_iterator(src, 5, seed=3, num_threads=2)
  for _ in range(6):  # crosses an epoch boundary (4 batches per epoch)
    next(it)
  state = it.get_state()
  want = [next(it)["index"].tolist() for _ in range(3)]
  it2 = pipeline.train_iterator(src, 5, seed=3, num_threads=2)
  it2.set_state(state)
  assert [next(it2)["index"].tolist() for _ in range(3)] == want
  it3 = pipeline.train_iterator(src, 5, seed=3, num_threads=2)
  epoch1 = sum((next(it3)["index"].tolist() for _ in range(4)), [])
  epoch2 = sum((next(it3)["index"].tolist() for _ in range(4)), [])
  assert len(set(epoch1)) == 20 and epoch1 != epoch2  # no repeats in an epoch, reshuffled after


def test_real_data_sets(shared_data):
  flowers = images.CsvImageSource(str(shared_data / "flowers/train.csv"),
                                  str(shared_data / "flowers/train"), 32)
  assert flowers.vocab == ["Daisy", "Dandelion", "Rose", "Sunflower", "Tulip"]
  val = images.CsvImageSource(str(shared_data / "flowers/val.csv"), str(shared_data / "flowers/val"),
                              32, vocab=flowers.vocab)
  assert len(val) == 430 and val[0]["image"].shape == (32, 32, 3)
  mini = images.CsvImageSource(str(shared_data / "mini/train.csv"), str(shared_data / "mini/train"),
                               32, need_label=False)
  assert len(mini) == 6400
  office = images.read_csv(str(shared_data / "hw4_meta/office/train.csv"))
  assert len(images.build_vocab(office)) == 65


def test_tfds_source(tmp_path):
  """`config.data.source='tfds:<name>'` reads through tfds.data_source (mocked: no download, no TF)."""
  import ml_collections
  import tensorflow_datasets as tfds
  data = ml_collections.ConfigDict(dict(source="tfds:mnist", tfds_data_dir=""))
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    src = images.open_source(data, "train", 32)
    assert len(src) == 6 and src.vocab == [str(d) for d in range(10)]
    rec = src[3]
    assert rec["image"].shape == (32, 32, 3) and rec["image"].dtype == np.uint8
    assert 0 <= int(rec["label"]) < 10
    batches = list(pipeline.eval_batches(src, 4, num_threads=1))
    assert sum(int(b["mask"].sum()) for b in batches) == 6
  with pytest.raises(UserError, match="tfds:no_such_dataset_xyz"):
    images.open_source(ml_collections.ConfigDict(dict(source="tfds:no_such_dataset_xyz")),
                       "train", 32)


def test_worker_processes_give_the_same_batches(demo_set):
  """grain worker processes (num_workers > 0) decode in parallel but keep the order and the state."""
  from absl import flags
  if not flags.FLAGS.is_parsed():  # grain's worker pool reads absl flags; main parses them, pytest not
    flags.FLAGS.mark_as_parsed()
  src = images.CsvImageSource(demo_set["train_csv"], demo_set["train_dir"], 16)
  threads = pipeline.train_iterator(src, 4, seed=1, num_threads=1)
  workers = pipeline.train_iterator(src, 4, seed=1, num_threads=1, num_workers=2)
  for _ in range(3):
    a, b = next(threads), next(workers)
    np.testing.assert_array_equal(a["index"], b["index"])
    np.testing.assert_array_equal(a["image"], b["image"])


def test_csv_encodings_and_paths_outside_the_folder(tmp_path):
  bom = tmp_path / "bom.csv"
  bom.write_bytes("\ufeffid,filename,label\n0,a.jpg,caf\u00e9\n".encode("utf-8"))   # as Excel saves
  rows = images.read_csv(str(bom))
  assert rows[0].id == "0" and rows[0].label == "caf\u00e9"
  latin = tmp_path / "latin.csv"
  latin.write_bytes("id,filename,label\n0,a.jpg,caf\u00e9\n".encode("latin-1"))
  with pytest.raises(UserError, match=r"latin\.csv: not UTF-8 text \(byte 0xe9 on line 2\)"):
    images.read_csv(str(latin))
  for name in ("/etc/passwd", "../secret.jpg", "sub/../../x.jpg"):
    with pytest.raises(UserError, match=r"p\.csv: row 2: filename .* is not a path inside"):
      images.read_csv(_write(tmp_path / "p.csv", f"id,filename,label\n0,{name},a\n"))
  assert images.read_csv(_write(tmp_path / "ok.csv", "id,filename,label\n0,sub/../a.jpg,a\n"))


def _folder_set(root, layout):
  """Tiny image folders: {relative path: (mode, size)}; every image a flat colour."""
  from PIL import Image
  for rel, (mode, size) in layout.items():
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = {"L": 128, "RGBA": (200, 10, 10, 128), "CMYK": (0, 255, 255, 0), "P": 3}.get(mode,
                                                                                        (10, 200, 10))
    Image.new(mode, size, colour).save(path, "JPEG" if rel.lower().endswith((".jpg", ".jpeg"))
                                       else "PNG")
  return str(root)


def test_class_folders_are_labelled_by_sorted_folder_names(tmp_path):
  """The ImageFolder layout: labels = sorted sub-folder names; any size and mode becomes RGB."""
  root = _folder_set(tmp_path / "train", {
      "tulip/a.jpg": ("RGB", (30, 20)), "tulip/sub/b.png": ("RGBA", (8, 8)),
      "daisy/c.JPG": ("L", (16, 16)), "daisy/d.jpeg": ("CMYK", (12, 40)),
      "rose/e.png": ("P", (9, 9))})
  (tmp_path / "train" / "notes.txt").write_text("not an image")           # ignored
  (tmp_path / "train" / "daisy" / ".hidden.jpg").write_text("skipped")   # hidden: skipped
  src = images.FolderImageSource(root, 24)
  assert src.vocab == ["daisy", "rose", "tulip"] and len(src) == 5
  assert src.files == ["daisy/c.JPG", "daisy/d.jpeg", "rose/e.png", "tulip/a.jpg", "tulip/sub/b.png"]
  assert src.labels.tolist() == [0, 0, 1, 2, 2]
  for i in range(len(src)):
    rec = src[i]
    assert rec["image"].shape == (24, 24, 3) and rec["image"].dtype == np.uint8
    assert int(rec["label"]) == src.labels[i]
  assert np.abs(src[4]["image"].astype(int) - [200, 10, 10]).max() <= 2   # RGBA: alpha dropped
  assert np.ptp(src[0]["image"][..., :3].astype(int), axis=-1).max() <= 1   # greyscale: R = G = B
  val = images.FolderImageSource(_folder_set(tmp_path / "val", {"rose/x.png": ("RGB", (5, 5))}), 24,
                                 vocab=src.vocab)
  assert val.labels.tolist() == [1]


def test_open_source_picks_the_layout(tmp_path):
  import ml_collections
  _folder_set(tmp_path / "flat", {"a.png": ("RGB", (8, 8)), "b.jpg": ("RGB", (8, 8))})
  _folder_set(tmp_path / "classes", {"x/a.png": ("RGB", (8, 8)), "y/b.png": ("RGB", (8, 8))})
  data = ml_collections.ConfigDict(dict(source="", train_csv="", train_dir=str(tmp_path / "flat"),
                                        val_csv="", val_dir=str(tmp_path / "classes")))
  flat = images.open_source(data, "train", 16, need_label=False)   # BYOL: unlabelled images
  assert isinstance(flat, images.FolderImageSource) and len(flat) == 2
  assert flat.labels.tolist() == [0, 0]
  labelled = images.open_source(data, "val", 16)
  assert labelled.vocab == ["x", "y"]
  with pytest.raises(UserError, match=r"config\.data\.train_dir=.*flat: 2 image\(s\) directly in "
                                      r"the folder .*one sub-folder per class"):
    images.open_source(data, "train", 16)   # the classifier needs labels
  data.train_dir = ""
  with pytest.raises(UserError, match=r"config\.data\.train_csv and config\.data\.train_dir are "
                                      "empty"):
    images.open_source(data, "train", 16)


@pytest.mark.parametrize("layout, extra, message", [
    ({}, None, r"config\.data\.train_dir=\S+: no JPEG or PNG images"),
    ({"a/x.png": ("RGB", (4, 4))}, "b", r"class folder 'b' holds no JPEG or PNG images"),
    ({"a/x.png": ("RGB", (4, 4)), "y.png": ("RGB", (4, 4))}, None,
     r"1 image\(s\) directly in the folder \(e\.g\. y\.png\)"),
])
def test_bad_image_folders(tmp_path, layout, extra, message):
  root = tmp_path / "imgs"
  root.mkdir()
  _folder_set(root, layout)
  if extra:
    (root / extra).mkdir()
  with pytest.raises(UserError, match=message):
    images.FolderImageSource(str(root), 8, where="config.data.train_dir")


def test_unknown_class_folder_and_corrupt_image(tmp_path):
  root = _folder_set(tmp_path / "val", {"hexagon/x.png": ("RGB", (4, 4))})
  with pytest.raises(UserError, match=r"config\.data\.val_dir=\S+: class folder 'hexagon' is not in "
                                      r"the training vocabulary \(2 classes\)"):
    images.FolderImageSource(root, 8, vocab=["a", "b"], where="config.data.val_dir")
  (tmp_path / "val" / "hexagon" / "bad.jpg").write_text("not a jpeg")
  src = images.FolderImageSource(root, 8, where="config.data.val_dir")
  with pytest.raises(UserError, match=r"config\.data\.val_dir=\S+: image \S+bad\.jpg cannot be "
                                      "decoded"):
    src[0]


def test_missing_inputs_name_the_key_before_any_work(tmp_path):
  """Presets that read ../shared/data fail on another machine with the key to set; the kNN /
  linear-probe monitor is off unless its set is given."""
  import ml_collections
  from tests.helpers import load_config
  for preset in ("default", "cpu"):
    c = load_config("classifier", preset)
    c.data.train_csv = "../shared/data_not_here/flowers/train.csv"
    with pytest.raises(UserError, match=r"^config\.data\.train_csv=\.\./shared/data_not_here/flowers/"
                                        r"train\.csv: no such file \(this preset reads the "
                                        r"workplace's real data .* or set config\.data\.train_csv="
                                        r"'' and config\.data\.train_dir to an image folder\)$"):
      images.check_inputs(c.data, "config.data")
    assert not images.has_images(load_config("byol", preset).knn)   # no monitor by default
  assert images.has_images(load_config("byol", "demo").knn)
  d = ml_collections.ConfigDict(dict(source="", train_csv="", train_dir=str(tmp_path / "nope"),
                                     val_csv="", val_dir=""))
  with pytest.raises(UserError, match=r"^config\.knn\.train_dir=\S+nope: no such folder$"):
    images.check_inputs(d, "config.knn")


def test_shared_data_presets_fail_in_one_line(tmp_path):
  """`main` on a machine without ../shared/data: one error line naming the path and the key, exit 2,
  no workdir left behind."""
  workdir = tmp_path / "run"
  proc = run_main("--config=configs/byol.py:cpu", f"--workdir={workdir}",
                  f"--config.data.train_csv={tmp_path}/shared/data/mini/train.csv", timeout=120)
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
  assert f"config.data.train_csv={tmp_path}/shared/data/mini/train.csv: no such file" in errors[0]
  assert not os.path.exists(workdir)


def test_tfds_worked_example(tmp_path, demo_set):
  """docs/real-data.md's tfds example, offline and without TensorFlow: a CSV set re-laid as class
  folders (examples/csv_to_folders.py), prepared as a tfds set on disk (examples/tfds_from_folders.py),
  read back through `data.source=tfds:image_folders` with the same images and labels."""
  import importlib.util
  import ml_collections
  from tests.helpers import ROOT

  def example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

  src = os.path.dirname(demo_set["train_csv"])
  assert example("csv_to_folders").main(src, str(tmp_path / "folders")) == {"train": 24, "val": 8}
  example("tfds_from_folders").main(str(tmp_path / "folders"), str(tmp_path / "tfds"))
  data = ml_collections.ConfigDict(dict(source="tfds:image_folders",
                                        tfds_data_dir=str(tmp_path / "tfds")))
  csv_train = images.CsvImageSource(demo_set["train_csv"], demo_set["train_dir"], 32)
  for split, n in (("train", 24), ("val", 8)):
    tf_src = images.open_source(data, split, 32)
    folders = images.open_source(ml_collections.ConfigDict(dict(
        source="", **{f"{split}_csv": "", f"{split}_dir": str(tmp_path / "folders" / split)})),
        split, 32)
    assert len(tf_src) == len(folders) == n and tf_src.vocab == folders.vocab == csv_train.vocab
    assert sorted(tf_src.labels.tolist()) == sorted(folders.labels.tolist())
  assert np.bincount(tf_src.labels, minlength=4).tolist() == [2, 2, 2, 2]
