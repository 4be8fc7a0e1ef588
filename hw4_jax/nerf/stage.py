"""One DVGO stage (coarse or fine): its ray pool, optimizer, jitted step and the work between steps.

The step is a pure `state, pool -> state, stats` jitted once per (grid shape, buffer budgets); the
ray batch is drawn inside it from `state.step_rng()`, so it is the same for any device count and
after a resume. Between steps the host only changes the grid resolution (at `pg_scale`), refreshes
the mask cache every `occupancy_every` steps (at 500, 1500, ... for 1000, as DVGO) and, at logging
steps resizes the compacted buffers when the measured samples per ray drift away from their budgets
(saved with the checkpoint, so a resumed run makes the same choices). Each level's budgets are
fitted to its samples per ray counted before its first step, so each level's step compiles once.
Resume, logging, checkpoints and stops are `core.loop`'s.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.core import mesh as mesh_lib
from hw4_jax.core.loop import Loop
from hw4_jax.nerf import dvgo, masked_adam
from hw4_jax.nerf import grid as grid_lib
from hw4_jax.nerf import rays as rays_lib
from hw4_jax.nerf import raymarch as R
from hw4_jax.nerf.views import Renderer, depth_rgb, render_spec

# A nearly full budget is enlarged at once (its rays would be dropped). A smaller one (any lower
# rung of the ladder: the step's cost follows the budgets) compiles the step again (~5 s on 2 CPU
# cores): only with this many steps left at the level. Within a level the samples per ray only
# fall (the mask cache only loses voxels) and the coloured ones mostly do (the geometry sharpens).
SHRINK_IF_STEPS_LEFT = 200
COUNT_RAYS = 8192           # training rays whose samples are counted at the start of a level


def make_tx(cfg):
  lrs = {"density": cfg.lr_density, "k0": cfg.lr_k0}
  if "lr_rgbnet" in cfg:
    lrs["rgbnet"] = cfg.lr_rgbnet
  return masked_adam.dvgo_adam(lrs, decay_steps=cfg.lr_decay * 1000,
                               skip_zero_grad=bool(cfg.get("skip_zero_grad", False)),
                               unique_frac=float(cfg.get("unique_frac", 0.5)))


def level_index(step: int, pg_scale) -> int:
  """Grid level in force after `step` updates (a scale at global step g happens before update g)."""
  return sum(1 for p in pg_scale if p <= step)


def make_pool(split, ids=None):
  """Device-side training data: flat images, poses, intrinsics, and optionally the usable pixel
  ids."""
  pool = {"images": jnp.asarray(split.images.reshape(-1, 3)), "poses": jnp.asarray(split.poses),
          "intrinsics": jnp.asarray(split.intrinsics)}
  if ids is not None:
    pool["ids"] = jnp.asarray(ids, jnp.int32)
  return pool


def _padded_chunks(rays_o, rays_d, chunk):
  n = rays_o.shape[0]
  pad = (-n) % chunk
  if pad:  # rays far away pointing away: they touch nothing
    rays_o = np.concatenate([rays_o, np.full((pad, 3), 1e6, np.float32)])
    rays_d = np.concatenate([rays_d, np.ones((pad, 3), np.float32)])
  return [(jnp.asarray(rays_o[i:i + chunk]), jnp.asarray(rays_d[i:i + chunk]))
          for i in range(0, n + pad, chunk)]


def view_ray_chunks(split, downrate: int, chunk: int = 4096):
  """Per training view: its (sub-sampled) rays in fixed-size chunks."""
  for i, c2w in enumerate(split.poses):
    o, d = rays_lib.camera_rays(split.camera(i), c2w)
    o, d = o[::downrate, ::downrate].reshape(-1, 3), d[::downrate, ::downrate].reshape(-1, 3)
    yield _padded_chunks(np.ascontiguousarray(o), np.ascontiguousarray(d), chunk)


def rays_hitting(split, buffers, spec, chunk: int = 4096):
  """Flat pixel ids of the training rays with at least one sample in the mask cache."""

  @jax.jit
  def hits(rays_o, rays_d):
    ok, _, _ = R.slot_mask(buffers, rays_o, rays_d, spec)
    return jnp.any(ok, axis=1)

  out = []
  hw = split.height * split.width
  for v, c2w in enumerate(split.poses):
    o, d = rays_lib.camera_rays(split.camera(v), c2w)
    chunks = _padded_chunks(o.reshape(-1, 3), d.reshape(-1, 3), chunk)
    h = np.concatenate([np.asarray(hits(a, b)) for a, b in chunks])[:hw]
    out.append(np.nonzero(h)[0] + v * hw)
  return np.concatenate(out).astype(np.int32)


def lookup_mask(src, xyz_min, xyz_max, size):
  """A mask grid of `size` over [xyz_min, xyz_max] read (nearest) from another mask grid."""
  pts = grid_lib.grid_points(jnp.asarray(xyz_min), jnp.asarray(xyz_max), size).reshape(-1, 3)
  return grid_lib.mask_lookup(src["mask"], pts, src["xyz_min"], src["xyz_max"]).reshape(size)


def draw_pixels(key, pool, n: int):
  """`n` flat pixel ids drawn uniformly from the pool's usable ids (`ids`) or from every pixel."""
  if "ids" in pool:
    return pool["ids"][jax.random.randint(key, (n,), 0, pool["ids"].shape[0])]
  return jax.random.randint(key, (n,), 0, pool["images"].shape[0])


@functools.partial(jax.jit, static_argnames=("spec", "height", "width"))
def _points_per_ray(buffers, pool, spec, height, width):
  """Mean candidate samples (inside the bbox and the mask cache) of COUNT_RAYS training rays."""
  pix = draw_pixels(jax.random.PRNGKey(0), pool, COUNT_RAYS)
  rays_o, rays_d = rays_lib.rays_from_pixels(pool["poses"], pool["intrinsics"], pix, height, width)
  ok, _, _ = R.slot_mask(buffers, rays_o, rays_d, spec)
  return jnp.sum(ok) / COUNT_RAYS


@functools.partial(jax.jit, static_argnames=("ratio", "thres"))
def _occupancy(density, shift, ratio, thres):
  return grid_lib.max_pool3(dvgo.alpha_grid(density, shift, ratio)) > thres


class StageRunner:
  """Runs one stage's loop (coarse or fine); `run` returns the trained state and its budgets."""

  def __init__(self, config, workdir, name, cfg, mesh, train, pool, preview=None, curve=None,
               on_grids=None, clock=None):
    self.config, self.workdir, self.name, self.cfg = config, workdir, name, cfg
    self.mesh, self.train, self.pool = mesh, train, pool
    self.preview = preview   # a split with images: its first view is rendered at the stage end
    self.curve = curve       # an evaluation.QualityCurve, or None
    # after every step: on_grids(stage, step, total, state, spec) (the viewer during training)
    self.on_grids = on_grids
    self.clock = clock       # an evaluation.TrainClock: the stage-end preview is left out of it
    self._steps = {}

  def step_fn(self, spec, per_voxel_lr):
    key = (spec, per_voxel_lr)
    if key in self._steps:
      return self._steps[key]
    cfg, mesh, tr = self.cfg, self.mesh, self.train
    batch = int(cfg.batch_size)
    weights = (float(cfg.weight_main), float(cfg.weight_entropy_last), float(cfg.weight_rgbper))
    skip_zero_grad, unique_frac = bool(cfg.get("skip_zero_grad", False)), float(cfg.unique_frac)

    def step(state, pool):
      pix = mesh_lib.constrain(draw_pixels(state.step_rng(), pool, batch), mesh)
      rays_o, rays_d = rays_lib.rays_from_pixels(pool["poses"], pool["intrinsics"], pix, tr.height,
                                                 tr.width)
      target = pool["images"][pix]
      grads, stats = dvgo.loss_and_grads(state.params, state.model_state, rays_o, rays_d, target,
                                         spec, weights)
      plr = {"density": state.model_state["per_voxel_lr"]} if per_voxel_lr else None
      state = state.apply_gradients(grads, per_voxel_lr=plr)
      out = {k: stats[k] for k in ("loss", "mse", "psnr")}
      out.update({f"debug/{k}": stats[k] for k in ("points_per_ray", "color_per_ray",
                                                   "overflow_rays")})
      if skip_zero_grad:   # distinct voxels beyond the sparse Adam's capacity skip this update
        out["debug/adam_overflow"] = masked_adam.overflow(grads, state.opt_state, unique_frac)
      return state, out

    rep = mesh_lib.replicated(mesh)
    fn = jax.jit(step, in_shardings=(rep, rep), out_shardings=(rep, rep), donate_argnums=(0,))
    self._steps[key] = fn
    return fn

  def scale(self, state, new: dvgo.Level):
    """Progressive scaling: trilinear upsampling, new mask cache, fresh optimizer, act_shift - 1."""
    cfg = self.cfg
    params = dict(state.params)
    params["density"] = grid_lib.resample(params["density"], new.world_size)
    params["k0"] = grid_lib.resample(params["k0"], new.world_size)
    buf = dict(state.model_state)
    ratio = dvgo.voxel_size_ratio(new, cfg.stepsize)
    # the previous level's mask (coarse mask & occupancy so far), read at the new resolution (DVGO)
    mask = lookup_mask(buf, buf["xyz_min"], buf["xyz_max"], new.world_size)
    buf["mask"] = mask & _occupancy(params["density"], buf["act_shift"], ratio,
                                    float(cfg.fast_color_thres))
    buf["act_shift"] = buf["act_shift"] - cfg.decay_after_scale
    return state.replace(params=params, model_state=buf).with_optimizer(make_tx(cfg))

  def refresh(self, state, level: dvgo.Level):
    """Mask cache &= occupancy (3x3x3 max-pooled alpha > fast_color_thres), as DVGO."""
    buf = dict(state.model_state)
    ratio = dvgo.voxel_size_ratio(level, self.cfg.stepsize)
    buf["mask"] = buf["mask"] & _occupancy(state.params["density"], buf["act_shift"], ratio,
                                           float(self.cfg.fast_color_thres))
    return state.replace(model_state=buf)

  def fitted_budgets(self, state, level: dvgo.Level, pool, colour_share: float):
    """Budgets for a level from its counted samples per ray (colour: `colour_share` of them)."""
    points = float(_points_per_ray(state.model_state, pool, level.spec, self.train.height,
                                   self.train.width))
    return R.fit_budgets((points, points * colour_share), level.spec.n_slots,
                         float(self.cfg.cap_margin))

  def run(self, state, levels, pg_scale, per_voxel_lr):
    """Trains to `num_iters` (resuming); -> (state, final per-ray budgets)."""
    cfg, total = self.cfg, int(self.cfg.num_iters)
    margin = float(cfg.cap_margin)
    rep = mesh_lib.replicated(self.mesh)
    with Loop(self.config, self.workdir, self.name, total,
              os.path.join(self.workdir, f"ckpt_{self.name}")) as loop:
      state, extra = loop.restore(state, {})
      start = loop.start
      k = level_index(start, pg_scale)
      state = jax.device_put(state, rep)
      pool = mesh_lib.replicate(self.pool, self.mesh)
      seen = tuple(extra["seen"]) if "seen" in extra else None   # last measured counts per ray
      if "caps" in extra:
        caps = tuple(extra["caps"])
      elif start == 0:
        caps = self.fitted_budgets(state, levels[k], pool, 1.0)
      else:   # a checkpoint from before the budgets were saved with it
        caps = (float(cfg.cap_points), float(cfg.cap_color))
      spec = levels[k].spec._replace(cap_points=caps[0], cap_color=caps[1])
      fn = self.step_fn(spec, per_voxel_lr)
      t0, compiles, step = time.perf_counter(), 0, start
      save_extra = lambda: {"caps": list(caps), **({"seen": list(seen)} if seen else {})}
      for s in range(start, total):
        step = s + 1
        if step in pg_scale:
          k += 1
          # committed to the step's sharding, or the next call compiles the step a second time
          state = jax.device_put(self.scale(state, levels[k]), rep)
          share = seen[1] / max(seen[0], 1e-6) if seen else 1.0
          caps = self.fitted_budgets(state, levels[k], pool, share)
          spec = levels[k].spec._replace(cap_points=caps[0], cap_color=caps[1])
          fn = self.step_fn(spec, per_voxel_lr)
          print(f"[{self.name}] step {step}: grid {levels[k].world_size}, {spec.n_slots} "
                f"samples/ray, budgets {caps}", flush=True)
        if cfg.occupancy_every and (step + cfg.occupancy_every // 2) % cfg.occupancy_every == 0:
          state = self.refresh(state, levels[k])
        state, stats = fn(state, pool)
        used = {"debug/cap_points": caps[0], "debug/cap_color": caps[1]}
        if loop.logger.due(step):
          host = jax.device_get(stats)
          seen = (float(host["debug/points_per_ray"]), float(host["debug/color_per_ray"]))
          level_end = next((p - 1 for p in pg_scale if p > step), total)
          shrink = 1.0 if level_end - step >= SHRINK_IF_STEPS_LEFT else 0.0
          new = R.adapt_budgets(caps, seen, spec.n_slots, margin, shrink_below=shrink)
          if new != caps:
            caps, compiles = new, compiles + 1
            spec = spec._replace(cap_points=caps[0], cap_color=caps[1])
            fn = self.step_fn(spec, per_voxel_lr)
        if self.curve is not None:
          self.curve.maybe(self.name, step, state.params, state.model_state, spec)
        if loop.end_step(step, state, stats, save_extra, scalars=used):
          break
        if self.on_grids is not None:
          self.on_grids(self.name, step, total, state, spec)
      loop.finish(step, state, save_extra)
      elapsed = time.perf_counter() - t0
      print(f"[{self.name}] {step - start} steps in {elapsed:.1f}s "
            f"({(step - start) / max(elapsed, 1e-9):.2f} it/s, {compiles} capacity changes)",
            flush=True)
      if self.on_grids is not None:   # the stage's last grids
        self.on_grids(self.name, step, total, state, spec, force=True)
      # A rendered image, not training: off the clock.
      with self.clock.paused() if self.clock is not None else contextlib.nullcontext():
        self._preview(state, spec, loop.logger, step)
    return state, caps

  def _preview(self, state, spec, logger, step):
    """One rendered view (and its depth) to TensorBoard / images/ at the end of the stage."""
    split = self.preview or self.train
    renderer = Renderer(state.params, state.model_state, render_spec(spec), self.config.render.chunk)
    rgb, depth, acc = renderer.image(split.camera(0), split.poses[0])
    logger.images(step, {"render": rgb, "depth": depth_rgb(depth, acc, spec.near, spec.far),
                         "target": split.images[0]})
