"""DVGO training: coarse stage, fine stage with progressive scaling, evaluation on the held-out views.

`MODES` is what `python -m hw4_jax.main --config=configs/dvgo.py` dispatches on. A workdir holds
`ckpt_coarse/`, `ckpt_fine/` (resume is exact: the step rng, the occupancy refreshes, the
progressive-scaling points and the buffer capacities are all functions of the step or saved), then
`model.npz`/`model.json` and `metrics.json`. A workdir whose fine stage reached `fine.num_iters` and
that holds `metrics.json` is finished: re-running it does nothing; with larger `*.num_iters` it trains
on from its checkpoints.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.core import distributed
from hw4_jax.core import mesh as mesh_lib
from hw4_jax.core.checkpoint import latest_step
from hw4_jax.core.errors import UserError
from hw4_jax.core.state import TrainState
from hw4_jax.nerf import dvgo, evaluation, export, masked_adam, scene, viewer, views
from hw4_jax.nerf import grid as grid_lib
from hw4_jax.nerf import rays as rays_lib
from hw4_jax.nerf import stage as stage_lib


def _load_data(config):
  """(scene, train split, evaluation split name, evaluation split) with images."""
  sc = scene.configured(config.data)
  eval_name = sc.eval_split(config.eval.split)
  data = config.data
  train = sc.load("train", data.downscale, data.white_bkgd)
  held = sc.load(eval_name, data.downscale, data.white_bkgd)
  print(f"[data] {sc.scene_dir} ({sc.layout} layout): {len(train)} train, {len(held)} {eval_name} "
        f"views ({sc.split_rule}) at {train.width}x{train.height}, near {sc.near:.3g}, far "
        f"{sc.far:.3g}", flush=True)
  return sc, train, eval_name, held


def _coarse(config, workdir, sc, train, mesh, val=None, curve=None, on_grids=None, clock=None):
  cc, near, far = config.coarse, sc.near, sc.far
  bg = 1.0 if config.data.white_bkgd else 0.0
  xyz_min, xyz_max = rays_lib.bbox_from_frustums(train, near, far)
  level = dvgo.make_level(xyz_min, xyz_max, cc.num_voxels, cc.num_voxels_base, cc, near, far,
                          use_mlp=False, bg=bg)
  print(f"[coarse] bbox {np.round(xyz_min, 3).tolist()} .. {np.round(xyz_max, 3).tolist()} "
        f"world size {level.world_size} samples/ray {level.spec.n_slots}", flush=True)
  resuming = latest_step(os.path.join(workdir, "ckpt_coarse")) is not None
  params = dvgo.init_params(jax.random.PRNGKey(config.seed), level, 3, None)
  mask = jnp.ones(level.world_size, bool)
  per_lr = jnp.ones((int(np.prod(level.world_size)),), jnp.float32)
  if not resuming:   # (a resumed run restores all of this from the checkpoint)
    if cc.maskout_near_cam_vox:
      close = dvgo.near_camera_mask(xyz_min, xyz_max, level.world_size, train.poses[:, :3, 3],
                                    near)
      params["density"] = jnp.where(close[..., None], -100.0, params["density"])
    if cc.pervoxel_lr:
      t0 = time.perf_counter()
      if cc.pervoxel_count == "projection":
        count = dvgo.view_counts_projected(xyz_min, xyz_max, level.world_size, train, near, far)
      else:
        count = dvgo.view_counts(level, xyz_min, xyz_max,
                                 stage_lib.view_ray_chunks(train, cc.pervoxel_lr_downrate))
      per_lr = jnp.asarray(count.reshape(-1) / max(count.max(), 1.0))
      mask = jnp.asarray(count > 2)
      print(f"[coarse] per-voxel view counts in {time.perf_counter() - t0:.1f}s", flush=True)
  buffers = {"xyz_min": jnp.asarray(xyz_min), "xyz_max": jnp.asarray(xyz_max),
             "act_shift": jnp.asarray(dvgo.act_shift(cc.alpha_init), jnp.float32), "mask": mask,
             "per_voxel_lr": per_lr}
  state = TrainState.create(params=params, tx=stage_lib.make_tx(cc),
                            rng=jax.random.PRNGKey(config.seed), model_state=buffers,
                            update_fn=masked_adam.apply_updates)
  runner = stage_lib.StageRunner(config, workdir, "coarse", cc, mesh, train,
                                 stage_lib.make_pool(train), preview=val, curve=curve,
                                 on_grids=on_grids, clock=clock)
  state, _ = runner.run(state, [level], pg_scale=(), per_voxel_lr=cc.pervoxel_lr)
  return state, level


def _fine(config, workdir, sc, train, mesh, coarse_state, coarse_level, val=None, curve=None,
          on_grids=None, clock=None):
  fc = config.fine
  bg = 1.0 if config.data.white_bkgd else 0.0
  cparams, cbuf = coarse_state.params, coarse_state.model_state
  # The coarse geometry at the coarse grid's own interval (DVGO: its voxel_size_ratio).
  ratio = dvgo.voxel_size_ratio(coarse_level, config.coarse.stepsize)
  calpha = dvgo.alpha_grid(cparams["density"], cbuf["act_shift"], ratio)
  cpts = grid_lib.grid_points(cbuf["xyz_min"], cbuf["xyz_max"], coarse_level.world_size)
  active = np.asarray(calpha > fc.bbox_thres)
  if not active.any():
    raise UserError(
        f"the coarse stage found no geometry (every alpha <= fine.bbox_thres) after "
        f"{int(coarse_state.step)} steps; its checkpoint is kept in {workdir}/ckpt_coarse: to "
        "resume, run the same command with a larger --config.coarse.num_iters (or check "
        "data.scene_dir, data.near / data.far)")
  pts = np.asarray(cpts)[active]
  xyz_min, xyz_max = pts.min(0), pts.max(0)
  shift = (xyz_max - xyz_min) * (fc.world_bound_scale - 1) / 2
  xyz_min, xyz_max = (xyz_min - shift).astype(np.float32), (xyz_max + shift).astype(np.float32)
  coarse_mask = {"mask": grid_lib.max_pool3(calpha) >= fc.mask_cache_thres,
                 "xyz_min": cbuf["xyz_min"], "xyz_max": cbuf["xyz_max"]}
  n_pg = len(fc.pg_scale)
  levels = [dvgo.make_level(xyz_min, xyz_max, int(fc.num_voxels / 2 ** (n_pg - i)), fc.num_voxels_base,
                            fc, sc.near, sc.far, use_mlp=True, bg=bg) for i in range(n_pg + 1)]
  print(f"[fine] bbox {np.round(xyz_min, 3).tolist()} .. {np.round(xyz_max, 3).tolist()} world "
        f"sizes {[lv.world_size for lv in levels]}", flush=True)
  # The state is built at the level a checkpoint was saved at (so its shapes match the checkpoint).
  start = latest_step(os.path.join(workdir, "ckpt_fine")) or 0
  k = stage_lib.level_index(start, fc.pg_scale)
  level = levels[k]
  mask = stage_lib.lookup_mask(coarse_mask, xyz_min, xyz_max, level.world_size)
  params = dvgo.init_params(jax.random.PRNGKey(config.seed + 1), level, fc.rgbnet_dim,
                            (fc.rgbnet_width, fc.rgbnet_depth), fc.viewbase_pe)
  buffers = {"xyz_min": jnp.asarray(xyz_min), "xyz_max": jnp.asarray(xyz_max),
             "act_shift": jnp.asarray(dvgo.act_shift(fc.alpha_init) - fc.decay_after_scale * k,
                                      jnp.float32), "mask": mask}
  state = TrainState.create(params=params, tx=stage_lib.make_tx(fc),
                            rng=jax.random.PRNGKey(config.seed + 1), model_state=buffers,
                            update_fn=masked_adam.apply_updates)
  # Rays that hit the coarse geometry (DVGO 'in_maskcache' sampler), with the first level's mask.
  level0 = levels[0]
  mask0 = stage_lib.lookup_mask(coarse_mask, xyz_min, xyz_max, level0.world_size)
  hit = stage_lib.rays_hitting(train, dict(buffers, mask=mask0), level0.spec)
  print(f"[fine] {hit.size} of {train.poses.shape[0] * train.height * train.width} training rays "
        f"hit the coarse geometry", flush=True)
  runner = stage_lib.StageRunner(config, workdir, "fine", fc, mesh, train,
                                 stage_lib.make_pool(train, hit), preview=val, curve=curve,
                                 on_grids=on_grids, clock=clock)
  state, caps = runner.run(state, levels, pg_scale=tuple(fc.pg_scale), per_voxel_lr=False)
  # A last occupancy refresh for rendering: it drops only voxels whose whole 3x3x3 neighbourhood has
  # alpha <= fast_color_thres, i.e. samples that compositing skips anyway (the image is unchanged).
  # the level the run reached: scaling steps past fine.num_iters never happen (a short run)
  final = levels[stage_lib.level_index(int(state.step), fc.pg_scale)]
  state = runner.refresh(state, final)
  return state, final, caps


def _keep_freed_memory():
  """glibc returns large freed blocks to the OS, so every step page-faults its big temporaries in
  again (measured: the sparse Adam update 212 -> 154 ms on lego). Keep them in the heap instead."""
  try:
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-4, 0)            # M_MMAP_MAX: no mmap'd blocks
    libc.mallopt(-1, 1 << 30)      # M_TRIM_THRESHOLD: do not trim the heap below 1 GiB free
  except (OSError, AttributeError):
    pass


def _meta(config, sc, train, eval_name, level, caps, fine_state, coarse_state, seconds) -> dict:
  """model.json: what rendering, evaluation and export need besides the arrays."""
  buf = fine_state.model_state
  center = (np.asarray(buf["xyz_min"]) + np.asarray(buf["xyz_max"])) / 2
  up = train.poses[:, :3, 1].mean(0)
  cam = train.camera(0)
  d = int(config.data.downscale)
  return {"spec": level.spec._asdict(), "caps": list(caps), "world_size": list(level.world_size),
          "voxel_size_ratio": dvgo.voxel_size_ratio(level, config.fine.stepsize),
          "mlp_layers": len(fine_state.params["rgbnet"]["layers"]),
          "camera": [cam.height, cam.width, cam.fx, cam.fy, cam.cx, cam.cy],
          "full_size": [cam.height * d, cam.width * d],
          "height": train.height, "width": train.width, "focal": cam.fx,
          "near": sc.near, "far": sc.far, "scene_dir": sc.scene_dir, "layout": sc.layout,
          "split_rule": sc.split_rule, "eval_split": eval_name, "downscale": d,
          "white_bkgd": bool(config.data.white_bkgd), "preset": config.get("preset", ""),
          "orbit": {"up": (up / np.linalg.norm(up)).tolist(),
                    "radius": float(np.linalg.norm(train.poses[:, :3, 3] - center, axis=-1).mean())},
          "coarse_bbox": [np.asarray(coarse_state.model_state[k]).tolist()
                          for k in ("xyz_min", "xyz_max")],
          "train_seconds": seconds[1], "coarse_seconds": seconds[0],
          "render_chunk": config.render.chunk}


def _orbit_due(config, workdir) -> str | None:
  """Where `render.after_train` writes its orbit videos, if they are still to be made."""
  out = config.render.output_dir or os.path.join(workdir, "render")
  done = all(os.path.isfile(os.path.join(out, f"orbit_{n}.mp4")) for n in ("rgb", "depth"))
  return out if config.render.after_train and not done else None


def _training_view(config, sc, train):
  """`view.during_train`: the browser viewer of the grids as they train (process 0 serves it)."""
  if not config.view.during_train or jax.process_index() != 0:
    return None
  return viewer.TrainingView(config, sc, train)


def train_and_evaluate(config, workdir):
  """Trains coarse + fine (resuming), saves the model, evaluates on the evaluation split, and with
  `render.after_train` renders the orbit videos."""
  _keep_freed_memory()
  if config.view.during_train:
    viewer.require_viser()
  coarse_at = latest_step(os.path.join(workdir, "ckpt_coarse")) or 0
  fine_at = latest_step(os.path.join(workdir, "ckpt_fine")) or 0
  trained = os.path.isfile(os.path.join(workdir, "model.npz")) and fine_at >= config.fine.num_iters
  if (trained and os.path.isfile(os.path.join(workdir, "metrics.json"))
      and not _orbit_due(config, workdir)):
    print(f"{workdir} is finished ({fine_at} fine steps, metrics.json): nothing to do", flush=True)
    return
  if fine_at and coarse_at < config.coarse.num_iters:
    # The fine stage was built on a shorter coarse stage (a time budget, or coarse.num_iters raised
    # since): it stays the one the fine grids were built on.
    config = config.copy_and_resolve_references()
    with config.unlocked():
      config.coarse.num_iters = coarse_at
  sc, train, eval_name, held = _load_data(config)
  mesh = mesh_lib.make_mesh()
  os.makedirs(workdir, exist_ok=True)
  # training wall time (compilation included), the curve and the stage-end previews left out
  clock = evaluation.TrainClock()
  curve = None
  if config.eval.curve_every_s:
    curve = evaluation.QualityCurve(workdir, held, config.eval.curve_every_s,
                                    config.eval.curve_views, clock, config.render.chunk)
  if not trained:
    live = _training_view(config, sc, train)
    try:
      coarse_state, coarse_level = _coarse(config, workdir, sc, train, mesh, held, curve, live,
                                           clock)
      t_coarse = clock.seconds()
      fine_state, level, caps = _fine(config, workdir, sc, train, mesh, coarse_state, coarse_level,
                                      held, curve, live, clock)
    finally:
      if live is not None:
        live.close()
    seconds = (t_coarse, clock.seconds())
    if curve is not None:   # the last point: the finished model
      curve.maybe("fine", int(fine_state.step), fine_state.params, fine_state.model_state,
                  level.spec._replace(cap_points=caps[0], cap_color=caps[1]), force=True)
      curve.close()
    buffers = {k: fine_state.model_state[k] for k in ("xyz_min", "xyz_max", "act_shift", "mask")}
    meta = _meta(config, sc, train, eval_name, level, caps, fine_state, coarse_state, seconds)
    dvgo.save_model(workdir, fine_state.params, buffers, meta)
    distributed.barrier("dvgo: model saved")  # process 0 wrote model.npz; every process reads it next
  if not os.path.isfile(os.path.join(workdir, "metrics.json")) or not trained:
    evaluation.evaluate_mode(config, workdir, split=held, split_name=eval_name)
  out = _orbit_due(config, workdir)
  if out:
    renderer, meta = views.Renderer.from_workdir(workdir, config.render.chunk)
    orbit = config.copy_and_resolve_references()
    with orbit.unlocked():
      orbit.render.orbit_frames = config.render.orbit_frames or 60
    views.render_orbit(renderer, meta, orbit, out)


MODES = {"train": train_and_evaluate, "eval": evaluation.evaluate_mode, "render": views.render_mode,
         "export": export.export_mode, "view": viewer.view_mode}
