"""Convert a Blender / NeRF-synthetic scene into the nerfstudio / instant-ngp layout.

  python bench/to_nerfstudio.py SCENE_DIR OUT_DIR [--quality=95]

Writes `OUT_DIR/images/<split>_<name>.jpg` (RGBA composited on white, JPEG) and one
`OUT_DIR/transforms.json` with the intrinsics at the top level (`fl_x`, `fl_y`, `cx`, `cy`, `w`,
`h`, `camera_model: PINHOLE`), every frame with its extension, and `train_filenames` = the train
frames, `test_filenames` = the val frames (and the test frames, if the scene has them). Used to
check that both layouts train to the same quality (docs/real-data.md).
"""

import argparse
import json
import math
import os

import numpy as np
from PIL import Image


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("scene_dir")
  ap.add_argument("out_dir")
  ap.add_argument("--quality", type=int, default=95)
  args = ap.parse_args()
  os.makedirs(os.path.join(args.out_dir, "images"), exist_ok=True)
  frames, lists, size, angle = [], {"train": [], "test": []}, None, None
  for split, target in (("train", "train"), ("val", "test"), ("test", "test")):
    path = os.path.join(args.scene_dir, f"transforms_{split}.json")
    if not os.path.isfile(path):
      continue
    with open(path) as f:
      meta = json.load(f)
    angle = meta["camera_angle_x"]
    for frame in meta["frames"]:
      src = os.path.join(args.scene_dir, frame["file_path"])
      src = src if os.path.splitext(src)[1] else src + ".png"
      rgba = np.asarray(Image.open(src).convert("RGBA"), np.float32) / 255.0
      rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
      name = f"images/{split}_{os.path.splitext(os.path.basename(src))[0]}.jpg"
      Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).save(
          os.path.join(args.out_dir, name), quality=args.quality)
      size = rgb.shape[:2]
      frames.append({"file_path": name, "transform_matrix": frame["transform_matrix"]})
      lists[target].append(name)
  h, w = size
  focal = 0.5 * w / math.tan(0.5 * angle)
  out = {"camera_model": "PINHOLE", "fl_x": focal, "fl_y": focal, "cx": w / 2, "cy": h / 2,
         "w": w, "h": h, "frames": frames, "train_filenames": lists["train"],
         "test_filenames": lists["test"]}
  with open(os.path.join(args.out_dir, "transforms.json"), "w") as f:
    json.dump(out, f, indent=1)
  print(f"to_nerfstudio: {len(lists['train'])} train + {len(lists['test'])} test frames "
        f"({w}x{h}, JPEG quality {args.quality}) -> {args.out_dir}")


if __name__ == "__main__":
  main()
