"""DVGO models (coarse: density + colour grids; fine: density + feature grids + colour MLP), the
loss, and the trained-model file.

A model is two trees: `params` (trained: density [X,Y,Z,1], k0 [X,Y,Z,C], rgbnet) and `buffers`
(not trained: bbox, act_shift, mask cache, per-voxel learning rate). Geometry numbers that set array
shapes (world size, samples per ray, alpha interval) live in a static `Level` computed on the host.
The loss is differentiated with respect to the *gathered corner values* of the grids, so grid
gradients come out as sparse rows (see masked_adam.py). A trained model is `model.npz` (every leaf
of params and buffers under its tree path) + `model.json` (the static render settings, camera, run).
"""

from __future__ import annotations

import math
import os
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.core import files
from hw4_jax.core.errors import UserError
from hw4_jax.nerf import grid as grid_lib
from hw4_jax.nerf import mlp as mlp_lib
from hw4_jax.nerf import raymarch as R
from hw4_jax.nerf.masked_adam import SparseGrad


class Level(NamedTuple):
  """One grid resolution of a stage: shapes and the static render settings."""
  world_size: tuple[int, int, int]
  voxel_size: float
  spec: R.RenderSpec


def act_shift(alpha_init: float) -> float:
  """DVGO's density bias: alpha(0) = alpha_init for an interval of one voxel."""
  return float(np.log(1.0 / (1.0 - alpha_init) - 1.0))


def make_level(xyz_min, xyz_max, num_voxels, num_voxels_base, cfg, near, far, use_mlp,
               bg=1.0) -> Level:
  size, voxel = grid_lib.world_size(xyz_min, xyz_max, num_voxels)
  _, voxel_base = grid_lib.world_size(xyz_min, xyz_max, num_voxels_base)
  stepdist = cfg.stepsize * voxel
  diag = float(np.linalg.norm(np.asarray(xyz_max, np.float64) - np.asarray(xyz_min, np.float64)))
  n_slots = int(math.ceil(diag / stepdist)) + 1
  spec = R.RenderSpec(n_slots=n_slots, stepdist=float(stepdist),
                      interval=float(cfg.stepsize * voxel / voxel_base), near=float(near),
                      far=float(far), fast_color_thres=float(cfg.fast_color_thres), bg=float(bg),
                      cap_points=float(cfg.cap_points), cap_color=float(cfg.cap_color),
                      use_mlp=use_mlp, viewbase_pe=int(cfg.get("viewbase_pe", 4)))
  return Level(world_size=size, voxel_size=voxel, spec=spec)


def init_params(key, level: Level, k0_dim: int, mlp: tuple[int, int] | None, pe: int = 4):
  size = level.world_size
  params = {"density": jnp.zeros((*size, 1), jnp.float32),
            "k0": jnp.zeros((*size, k0_dim), jnp.float32)}
  if mlp is not None:
    width, depth = mlp
    params["rgbnet"] = mlp_lib.init(key, k0_dim + 3 + 6 * pe, width, depth)
  return params


def voxel_size_ratio(level: Level, stepsize: float) -> float:
  """voxel size / base voxel size: the interval DVGO activates grid densities with."""
  return level.spec.interval / stepsize


def alpha_grid(density, shift, interval):
  """Alpha at the grid points (DVGO activate_density with the given interval): [X, Y, Z]."""
  return -jnp.expm1(R.log_transmit(density[..., 0], shift, interval))


def _color_loss(smp: R.Samples, col: R.ColorPoints, ray_emb, target, spec: R.RenderSpec,
                weights_cfg, n_rays: int):
  """The loss as a function of (weights [P], alphainv_last [R], colour-point features [Q, C], MLP)."""
  w_main, w_ent, w_rgbper = weights_cfg
  ic = jnp.minimum(col.idx, smp.valid.shape[0] - 1)
  rc = jnp.minimum(col.ray, n_rays - 1)

  def loss_fn(weights, last, feat, rgbnet):
    wc = jnp.where(col.valid, weights[ic], 0.0)
    rgb = R.point_rgb(feat, rgbnet, ray_emb, col.ray, spec, col.count)
    rgb_marched = R.accumulate(wc, rgb, col.ray, last, n_rays, spec.bg)
    ok = (smp.ray_ok & col.ray_ok).astype(jnp.float32)
    n_ok = jnp.maximum(jnp.sum(ok), 1.0)
    mse = jnp.sum(ok[:, None] * (rgb_marched - target) ** 2) / (3.0 * n_ok)
    pout = jnp.clip(last, 1e-6, 1 - 1e-6)
    ent = -(pout * jnp.log(pout) + (1 - pout) * jnp.log(1 - pout))
    ent = jnp.sum(ok * ent) / n_ok
    per = jnp.sum((rgb - target[rc]) ** 2, -1) * jax.lax.stop_gradient(wc) * ok[rc]
    rgbper = jnp.sum(per) / n_ok
    loss = w_main * mse + w_ent * ent + w_rgbper * rgbper
    stats = {"loss": loss, "mse": mse, "psnr": -10.0 * jnp.log10(mse),
             "points_per_ray": smp.count / n_rays, "color_per_ray": col.count / n_rays,
             "overflow_rays": n_rays - jnp.sum(ok)}
    return loss, stats

  return loss_fn


def loss_and_grads(params, buffers, rays_o, rays_d, target, spec: R.RenderSpec, weights_cfg):
  """DVGO's loss on a ray batch and its gradients (grids as SparseGrad rows).

  The loss is differentiated in two pieces so that no grid-sized gradient exists: the compositing
  with respect to the points' densities (a vjp), and the colour part with respect to the
  interpolated features of the coloured points; the grids' gradient rows (one per trilinear
  corner) are then corner weight * point gradient.
  """
  n_rays = rays_o.shape[0]
  lo, hi = buffers["xyz_min"], buffers["xyz_max"]
  smp = R.march(buffers, rays_o, rays_d, spec)
  ids_d, w_d = grid_lib.corners(smp.pts, lo, hi, params["density"].shape)
  density = grid_lib.interp(params["density"].reshape(-1, 1), ids_d, w_d)[:, 0]

  def density_fn(density):
    _, weights, last = R.composite(density, smp, buffers, spec, n_rays)
    return weights, last

  (weights, last), density_vjp = jax.vjp(density_fn, density)
  col = R.select_color(weights, smp, spec, n_rays)
  ic = jnp.minimum(col.idx, weights.shape[0] - 1)
  k0 = params["k0"]
  ids_k, w_k = grid_lib.corners(smp.pts[ic], lo, hi, k0.shape)
  feat = grid_lib.interp(k0.reshape(-1, k0.shape[-1]), ids_k, w_k)
  emb = R.view_embedding(R.unit(rays_d), spec.viewbase_pe)
  loss_fn = _color_loss(smp, col, emb, target, spec, weights_cfg, n_rays)
  grad_fn = jax.value_and_grad(loss_fn, argnums=(0, 1, 2, 3), has_aux=True)
  (_, stats), (g_w, g_last, g_feat, g_mlp) = grad_fn(weights, last, feat, params.get("rgbnet"))
  (g_density,) = density_vjp((g_w, g_last))
  rows_d = w_d * grid_lib.materialize(g_density)[:, None]
  rows_k = w_k[:, :, None] * g_feat[:, None, :]
  grads = {"density": SparseGrad(ids=ids_d.reshape(-1), rows=rows_d.reshape(-1, 1)),
           "k0": SparseGrad(ids=ids_k.reshape(-1), rows=rows_k.reshape(-1, k0.shape[-1]))}
  if "rgbnet" in params:
    grads["rgbnet"] = g_mlp
  return grads, stats


def loss_of_params(params, buffers, rays_o, rays_d, target, spec: R.RenderSpec, weights_cfg):
  """The same loss as a plain function of the params (dense autodiff through whole-grid trilinear
  lookups; the test reference for `loss_and_grads`)."""
  n_rays = rays_o.shape[0]
  lo, hi = buffers["xyz_min"], buffers["xyz_max"]
  smp = R.march(buffers, rays_o, rays_d, spec)
  density = grid_lib.trilinear(params["density"], smp.pts, lo, hi)[:, 0]
  _, weights, last = R.composite(density, smp, buffers, spec, n_rays)
  col = R.select_color(jax.lax.stop_gradient(weights), smp, spec, n_rays)
  ic = jnp.minimum(col.idx, weights.shape[0] - 1)
  feat = grid_lib.trilinear(params["k0"], smp.pts[ic], lo, hi)
  emb = R.view_embedding(R.unit(rays_d), spec.viewbase_pe)
  loss_fn = _color_loss(smp, col, emb, target, spec, weights_cfg, n_rays)
  return loss_fn(weights, last, feat, params.get("rgbnet"))[0]


def near_camera_mask(xyz_min, xyz_max, size, cam_centers, near):
  """True for voxels within `near` of a training camera (DVGO sets their density to -100)."""
  pts = grid_lib.grid_points(jnp.asarray(xyz_min), jnp.asarray(xyz_max), size).reshape(-1, 3)
  cams = jnp.asarray(cam_centers, jnp.float32)

  def body(best, c):
    return jnp.minimum(best, jnp.linalg.norm(pts - c, axis=-1)), None

  best, _ = jax.lax.scan(body, jnp.full((pts.shape[0],), jnp.inf), cams)
  return (best <= near).reshape(size)


def view_counts(level: Level, xyz_min, xyz_max, views):
  """DVGO per-voxel view count: +1 for each view whose samples put trilinear weight > 1 on it.

  `views` yields, per training view, a list of (rays_o, rays_d) chunks of equal size.
  """
  size = level.world_size
  n_vox = int(np.prod(size))
  n_samples = int(np.linalg.norm(np.asarray(size) + 1) / (level.spec.stepdist / level.voxel_size)) + 1
  xyz_min, xyz_max = jnp.asarray(xyz_min), jnp.asarray(xyz_max)

  @jax.jit
  def add_chunk(acc, rays_o, rays_d):
    start, dirs, _ = R.ray_segments(rays_o, rays_d, xyz_min, xyz_max, level.spec.near,
                                    level.spec.far)
    steps = jnp.arange(n_samples, dtype=jnp.float32) * level.spec.stepdist
    pts = (rays_o[:, None] + dirs[:, None] * (start[:, None] + steps)[..., None]).reshape(-1, 3)
    inside = jnp.all((pts >= xyz_min) & (pts <= xyz_max), -1)
    ids, w = grid_lib.corners(pts, xyz_min, xyz_max, (*size, 1))
    return acc.at[ids].add(w * inside[:, None])

  count = np.zeros((n_vox,), np.float32)
  for chunks in views:
    acc = jnp.zeros((n_vox,), jnp.float32)
    for rays_o, rays_d in chunks:
      acc = add_chunk(acc, rays_o, rays_d)
    count += np.asarray(acc > 1, np.float32)
  return count.reshape(size)


def view_counts_projected(xyz_min, xyz_max, size, split, near, far):
  """How many training views see each voxel, by projecting the voxels into every camera.

  The same quantity as `view_counts` (which sums trilinear weights of the views' ray samples, as
  the official code) for any view whose rays are denser than the voxels, at a fraction of the cost
  on a CPU: no scatter, one pass per view over the voxel centres.
  """
  pts = grid_lib.grid_points(jnp.asarray(xyz_min), jnp.asarray(xyz_max), size).reshape(-1, 3)

  height, width = split.height, split.width

  def body(count, view):
    c2w, (fx, fy, cx, cy) = view
    cam = (pts - c2w[:3, 3]) @ c2w[:3, :3]
    depth = -cam[:, 2]
    u = cam[:, 0] / depth * fx + cx
    v = -cam[:, 1] / depth * fy + cy
    seen = (depth >= near) & (depth <= far) & (u >= 0) & (u <= width) & (v >= 0) & (v <= height)
    return count + seen.astype(jnp.float32), None

  views = (jnp.asarray(split.poses), jnp.asarray(split.intrinsics))
  count, _ = jax.lax.scan(body, jnp.zeros((pts.shape[0],), jnp.float32), views)
  return np.asarray(count).reshape(size)


def save_model(workdir: str, params, buffers, meta: dict) -> None:
  """`model.npz` (every leaf under its tree path, e.g. `params['rgbnet']['layers'][0]['w']`) and
  `model.json`, atomically, on process 0."""
  if not files.is_main_process():
    return
  flat = {}
  for prefix, tree in (("params", params), ("buffers", buffers)):
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
      flat[prefix + jax.tree_util.keystr(path)] = np.asarray(leaf)
  with files.atomic_path(os.path.join(workdir, "model.npz")) as tmp:
    np.savez(tmp, **flat)
  files.write_json(os.path.join(workdir, "model.json"), meta)


_PATH_PART = re.compile(r"\['([^']*)'\]|\[(\d+)\]")


def _unflatten(flat: dict) -> dict:
  """{"params['a'][0]['w']": x} -> {"params": {"a": [{"w": x}]}} (lists where the keys are indices)."""
  root: dict = {}
  for key, value in flat.items():
    head = key[:key.index("[")]
    parts = [name if name is not None and idx == "" else int(idx)
             for name, idx in _PATH_PART.findall(key[len(head):])]
    node = root.setdefault(head, {})
    for part in parts[:-1]:
      node = node.setdefault(part, {})
    node[parts[-1]] = value

  def listify(node):
    if not isinstance(node, dict):
      return node
    node = {k: listify(v) for k, v in node.items()}
    if node and all(isinstance(k, int) for k in node):
      return [node[i] for i in sorted(node)]
    return node
  return listify(root)


def load_meta(workdir: str) -> dict:
  """model.json of a trained workdir (the static settings; no arrays), or a UserError."""
  npz, js = os.path.join(workdir, "model.npz"), os.path.join(workdir, "model.json")
  if not (os.path.isfile(npz) and os.path.isfile(js)):
    raise UserError(f"{workdir}: no trained model (model.npz/model.json); run mode=train first")
  return files.read_json_object(js, "the trained model's settings")


def load_model(workdir: str):
  """-> (params, buffers, meta) of a trained workdir, or a UserError when there is none."""
  meta = load_meta(workdir)
  npz = os.path.join(workdir, "model.npz")
  try:
    with np.load(npz) as data:
      tree = _unflatten({k: data[k] for k in data.files})
  except (OSError, ValueError, KeyError) as err:
    raise UserError(f"{npz}: cannot read the trained model ({err})") from None
  tree = jax.tree.map(jnp.asarray, tree)
  return tree["params"], tree["buffers"], meta
