"""`mode=export`: a coloured surface mesh of a trained scene and its bounding boxes and cameras.

- `WORKDIR/export/mesh.ply`: marching cubes (scikit-image) on the fine grid's alpha (DVGO's
  activation at the grid's own interval, zero outside the mask cache) at `export.alpha_thres`,
  after filling what the shells enclose and dropping specks (`solids`); vertices in world
  coordinates. Each vertex's colour is what the model renders for a ray that
  starts 1.5 voxels outside the surface along the vertex normal and looks back along it: the
  surface seen head-on, with the view-dependent colour of that view. Written with plyfile as uchar
  `red` / `green` / `blue` vertex properties.
- `WORKDIR/export/mesh_preview.png`: the mesh drawn with matplotlib (a picture to check by eye).
- `WORKDIR/export/bbox_and_cams.json`: the coarse and fine bounding boxes and every training camera
  (pose and intrinsics at the training resolution), as DirectVoxGO's `--export_bbox_and_cams_only`.
"""

from __future__ import annotations

import os

import numpy as np

from hw4_jax.core import files, interrupt
from hw4_jax.core.errors import UserError
from hw4_jax.core.progress import Ticker
from hw4_jax.nerf import dvgo, scene
from hw4_jax.nerf.views import Renderer, render_spec
from hw4_jax.nerf import raymarch as R

COLOR_OFFSET = 1.5    # voxels outside the surface where a vertex's colour ray starts
COLOR_CHUNK = 65536   # vertices per progress tick
MIN_SOLID = 0.01      # solids smaller than this fraction of the largest are specks: dropped


def alpha_volume(params, buffers, meta) -> np.ndarray:
  """[X, Y, Z] alpha of the fine grid (0 outside the mask cache)."""
  ratio = float(meta.get("voxel_size_ratio", 1.0))
  alpha = dvgo.alpha_grid(params["density"], buffers["act_shift"], ratio)
  return np.array(alpha * buffers["mask"], np.float32)   # (a writable copy: skimage needs one)


def solids(alpha: np.ndarray, thres: float) -> np.ndarray:
  """alpha made solid: every voxel enclosed by the `thres` shell counts as inside (DVGO never sees
  behind a surface, so the inside of an object has low, arbitrary density, which would give a second
  surface facing inwards), and specks under `MIN_SOLID` of the largest solid's volume are dropped."""
  from scipy import ndimage
  filled = ndimage.binary_fill_holes(alpha > thres)
  labels, _ = ndimage.label(filled)
  volume = np.bincount(labels.ravel())
  volume[0] = 0
  keep = np.isin(labels, np.nonzero(volume >= MIN_SOLID * volume.max())[0]) & (labels > 0)
  return np.where(keep, np.maximum(alpha, np.where(alpha > thres, 0.0, 1.0)), 0.0).astype(np.float32)


def surface(alpha: np.ndarray, xyz_min, xyz_max, thres: float):
  """(vertices [V, 3] in world coordinates, faces [F, 3], outward unit normals [V, 3]) of the
  solids' boundary where alpha crosses `thres`."""
  from skimage import measure
  if not alpha.max() > thres > alpha.min():
    raise UserError(f"config.export.alpha_thres={thres}: no surface (the grid's alpha spans "
                    f"{alpha.min():.3g} .. {alpha.max():.3g})")
  spacing = (np.asarray(xyz_max, np.float64) - np.asarray(xyz_min, np.float64)) / (
      np.asarray(alpha.shape) - 1)
  verts, faces, normals, _ = measure.marching_cubes(solids(alpha, thres), level=thres,
                                                    spacing=tuple(spacing))
  # skimage's normals follow the gradient towards lower values: out of the (high-alpha) solids
  return (verts + np.asarray(xyz_min)).astype(np.float32), faces.astype(np.int32), normals.astype(
      np.float32)


def vertex_colors(renderer: Renderer, verts, normals, voxel: float) -> np.ndarray:
  """uint8 [V, 3]: the rendered colour of a ray from `COLOR_OFFSET` voxels out along each
  normal, looking back at the vertex."""
  out = np.zeros((len(verts), 3), np.uint8)
  ticker = Ticker("export", len(verts), "vertices", every=COLOR_CHUNK)
  for start in range(0, len(verts), COLOR_CHUNK):
    interrupt.check()
    sel = slice(start, start + COLOR_CHUNK)
    origins = verts[sel] + normals[sel] * COLOR_OFFSET * voxel
    rgb, _, _ = renderer.rays(origins, -normals[sel])
    out[sel] = files.to_uint8(rgb)
    ticker.tick(min(start + COLOR_CHUNK, len(verts)), "colouring")
  return out


def write_ply(path: str, verts, faces, colors) -> None:
  import plyfile
  v = np.empty(len(verts), [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                            ("blue", "u1")])
  v["x"], v["y"], v["z"] = verts.T
  v["red"], v["green"], v["blue"] = colors.T
  f = np.empty(len(faces), [("vertex_indices", "i4", (3,))])
  f["vertex_indices"] = faces
  data = plyfile.PlyData([plyfile.PlyElement.describe(v, "vertex"),
                          plyfile.PlyElement.describe(f, "face")])
  with files.atomic_path(path) as tmp:
    data.write(tmp)


def preview(path: str, verts, faces, colors, max_faces: int = 60000) -> None:
  """The mesh drawn by matplotlib from one side (faces coloured by their vertices' mean)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from mpl_toolkits.mplot3d.art3d import Poly3DCollection
  keep = faces[np.random.default_rng(0).permutation(len(faces))[:max_faces]]
  fig = plt.figure(figsize=(6, 6), dpi=120)
  ax = fig.add_subplot(projection="3d")
  ax.add_collection3d(Poly3DCollection(verts[keep], facecolors=colors[keep].mean(1) / 255.0,
                                       linewidths=0))
  lo, hi = verts.min(0), verts.max(0)
  half = float((hi - lo).max()) / 2
  for axis, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), (lo + hi) / 2):
    axis(c - half, c + half)
  ax.set_box_aspect((1, 1, 1))
  ax.set_axis_off()
  ax.view_init(elev=25, azim=-60)
  with files.atomic_path(path) as tmp:
    fig.savefig(tmp, bbox_inches="tight")
  plt.close(fig)


def cameras_json(config, meta) -> dict:
  """The bounding boxes and the training cameras (as trained: at `meta['downscale']`)."""
  sc = scene.configured(config.data, config.data.scene_dir or meta["scene_dir"])
  d = int(meta.get("downscale", 1))
  split = sc.load("train", d, with_images=False,
                  size=tuple(meta.get("full_size", (meta["height"] * d, meta["width"] * d))))
  cams = []
  for i, (c2w, name) in enumerate(zip(split.poses, split.names)):
    cam = split.camera(i)
    cams.append({"name": name, "c2w": c2w.tolist(), "width": cam.width, "height": cam.height,
                 "fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy})
  return {"fine_bbox": meta.get("fine_bbox"), "coarse_bbox": meta.get("coarse_bbox"),
          "near": meta["near"], "far": meta["far"], "cameras": cams}


def export_mode(config, workdir) -> dict:
  """MODES['export']: mesh.ply, mesh_preview.png and bbox_and_cams.json in WORKDIR/export."""
  params, buffers, meta = dvgo.load_model(workdir)
  out = os.path.join(workdir, "export")
  lo, hi = np.asarray(buffers["xyz_min"]), np.asarray(buffers["xyz_max"])
  meta = {**meta, "fine_bbox": [lo.tolist(), hi.tolist()]}
  alpha = alpha_volume(params, buffers, meta)
  verts, faces, normals = surface(alpha, lo, hi, float(config.export.alpha_thres))
  voxel = float(((hi - lo) / (np.asarray(alpha.shape) - 1)).mean())
  print(f"[export] marching cubes at alpha {config.export.alpha_thres}: {len(verts)} vertices, "
        f"{len(faces)} faces; colouring the vertices", flush=True)
  spec = render_spec(R.RenderSpec(**meta["spec"]), meta.get("caps"))
  far = COLOR_OFFSET * voxel * 4
  spec = spec._replace(near=0.0, far=float(far), n_slots=int(np.ceil(far / spec.stepdist)) + 1)
  renderer = Renderer(params, buffers, spec, config.render.chunk)
  colors = vertex_colors(renderer, verts, normals, voxel)
  write_ply(os.path.join(out, "mesh.ply"), verts, faces, colors)
  preview(os.path.join(out, "mesh_preview.png"), verts, faces, colors)
  files.write_json(os.path.join(out, "bbox_and_cams.json"), cameras_json(config, meta))
  summary = {"vertices": len(verts), "faces": len(faces),
             "mesh_bbox": [verts.min(0).tolist(), verts.max(0).tolist()],
             "fine_bbox": meta["fine_bbox"]}
  print(f"[export] wrote {out}/mesh.ply ({len(faces)} faces), mesh_preview.png, "
        f"bbox_and_cams.json; mesh bbox {np.round(verts.min(0), 3).tolist()} .. "
        f"{np.round(verts.max(0), 3).tolist()} within the fine bbox {np.round(lo, 3).tolist()} .. "
        f"{np.round(hi, 3).tolist()}", flush=True)
  return summary
