"""The training loop of one DVGO stage: jitted step, progressive scaling, occupancy refresh, caps.

The step is a pure `state, pool -> state, stats` jitted once per (grid shape, buffer capacity); the
ray batch is drawn inside it from `state.step_rng()`, so it is the same for any device count and
after a resume. Between steps the host only changes the grid resolution (at `pg_scale`), refreshes
the mask cache every 1000 steps (at step 500, 1500, ... as DVGO) and, at logging steps, resizes the
compacted buffers when the measured samples per ray drift away from their capacity (saved with the
checkpoint, so a resumed run makes the same choices).
"""

from __future__ import annotations

import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.core import logging as log_lib
from hw4_jax.core import mesh as mesh_lib
from hw4_jax.nerf import dvgo
from hw4_jax.nerf import evaluate
from hw4_jax.nerf import grid as grid_lib
from hw4_jax.nerf import rays as rays_lib
from hw4_jax.nerf import render as R
from hw4_jax.nerf.masked_adam import apply_updates, dvgo_adam


def make_tx(cfg, skip_zero_grad: bool):
  lrs = {"density": cfg.lr_density, "k0": cfg.lr_k0}
  if "lr_rgbnet" in cfg:
    lrs["rgbnet"] = cfg.lr_rgbnet
  return dvgo_adam(lrs, decay_steps=cfg.lr_decay * 1000, skip_zero_grad=skip_zero_grad,
                   unique_frac=float(cfg.get("unique_frac", 0.5)))


def level_index(step: int, pg_scale) -> int:
  """Grid level in force after `step` updates (a scale at global step g happens before update g)."""
  return sum(1 for p in pg_scale if p <= step)


def make_pool(split, ids):
  """Device-side training data: flat images, poses, and optionally the usable pixel ids."""
  pool = {"images": jnp.asarray(split.images.reshape(-1, 3)), "poses": jnp.asarray(split.poses)}
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
  for c2w in split.poses:
    o, d = rays_lib.camera_rays(split.height, split.width, split.focal, c2w)
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
    o, d = rays_lib.camera_rays(split.height, split.width, split.focal, c2w)
    chunks = _padded_chunks(o.reshape(-1, 3), d.reshape(-1, 3), chunk)
    h = np.concatenate([np.asarray(hits(a, b)) for a, b in chunks])[:hw]
    out.append(np.nonzero(h)[0] + v * hw)
  return np.concatenate(out).astype(np.int32)


def lookup_mask(src, xyz_min, xyz_max, size):
  """A mask grid of `size` over [xyz_min, xyz_max] read (nearest) from another mask grid."""
  pts = grid_lib.grid_points(jnp.asarray(xyz_min), jnp.asarray(xyz_max), size).reshape(-1, 3)
  return grid_lib.mask_lookup(src["mask"], pts, src["xyz_min"], src["xyz_max"]).reshape(size)


@functools.partial(jax.jit, static_argnames=("ratio", "thres"))
def _occupancy(density, shift, ratio, thres):
  return grid_lib.max_pool3(dvgo.alpha_grid(density, shift, ratio)) > thres


CAP_LADDER = tuple(float(c) for c in (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96,
                                      128, 160, 192, 256, 320, 384, 512, 640, 768, 1024))
ADAPT_AFTER = (5, 20, 50)   # steps into a level at which capacities are also re-checked


def _caps_for(cfg, spec):
  return (float(cfg.cap_points), float(cfg.cap_color))


class StageRunner:
  """Runs one stage's loop (coarse or fine) with logging and checkpoints."""

  def __init__(self, config, workdir, name, cfg, mesh, train, ckpt, pool):
    self.config, self.workdir, self.name, self.cfg = config, workdir, name, cfg
    self.mesh, self.train, self.ckpt, self.pool = mesh, train, ckpt, pool
    self.coarse_mask = None
    self.preview_split = None   # a split with images: its first view is rendered at the stage end
    self._steps = {}

  def step_fn(self, spec, per_voxel_lr):
    key = (spec, per_voxel_lr)
    if key in self._steps:
      return self._steps[key]
    cfg, mesh, tr = self.cfg, self.mesh, self.train
    batch, pooled = int(cfg.batch_size), self.name == "fine"
    weights = (float(cfg.weight_main), float(cfg.weight_entropy_last), float(cfg.weight_rgbper))

    def step(state, pool):
      key = state.step_rng()
      if pooled:
        pix = pool["ids"][jax.random.randint(key, (batch,), 0, pool["ids"].shape[0])]
      else:
        pix = jax.random.randint(key, (batch,), 0, pool["images"].shape[0])
      pix = mesh_lib.constrain(pix, mesh)
      rays_o, rays_d = rays_lib.rays_from_pixels(pool["poses"], pix, tr.height, tr.width, tr.focal)
      target = pool["images"][pix]
      grads, stats = dvgo.loss_and_grads(state.params, state.model_state, rays_o, rays_d, target,
                                         spec, weights)
      plr = {"density": state.model_state["per_voxel_lr"]} if per_voxel_lr else None
      updates, opt_state = state.tx.update(grads, state.opt_state, state.params, per_voxel_lr=plr)
      params = apply_updates(state.params, updates)
      if cfg.get("skip_zero_grad", False):   # distinct voxels beyond the sparse Adam's capacity skip this update
        stats["adam_overflow"] = sum(jnp.maximum(opt_state.leaves[k].unique - updates[k].ids.shape[0], 0)
                                     for k in ("density", "k0"))
      return state.replace(step=state.step + 1, params=params, opt_state=opt_state), stats

    rep = mesh_lib.replicated(mesh)
    fn = jax.jit(step, in_shardings=(rep, rep), out_shardings=(rep, rep), donate_argnums=(0,))
    self._steps[key] = fn
    return fn

  def _scale(self, state, old, new):
    """Progressive scaling: trilinear upsampling, new mask cache, fresh optimizer, act_shift - 1."""
    cfg = self.cfg
    params = dict(state.params)
    params["density"] = grid_lib.resample(params["density"], new.world_size)
    params["k0"] = grid_lib.resample(params["k0"], new.world_size)
    buf = dict(state.model_state)
    ratio = new.spec.interval / cfg.stepsize
    # the previous level's mask (coarse mask & occupancy so far), read at the new resolution (DVGO)
    mask = lookup_mask(buf, np.asarray(buf["xyz_min"]), np.asarray(buf["xyz_max"]), new.world_size)
    buf["mask"] = mask & _occupancy(params["density"], buf["act_shift"], ratio,
                                    float(cfg.fast_color_thres))
    buf["act_shift"] = buf["act_shift"] - cfg.decay_after_scale
    tx = make_tx(cfg, skip_zero_grad=cfg.skip_zero_grad)
    return state.replace(params=params, model_state=buf, opt_state=tx.init(params), tx=tx)

  def refresh(self, state, level):
    """Mask cache &= occupancy (3x3x3 max-pooled alpha > fast_color_thres), as DVGO."""
    buf = dict(state.model_state)
    ratio = level.spec.interval / self.cfg.stepsize
    buf["mask"] = buf["mask"] & _occupancy(state.params["density"], buf["act_shift"], ratio,
                                           float(self.cfg.fast_color_thres))
    return state.replace(model_state=buf)

  def _fit(self, seen, n_slots):
    """Per-ray capacities (from a fixed ladder, so shapes repeat) for measured counts per ray."""
    margin = float(self.cfg.cap_margin)
    want = [next((c for c in CAP_LADDER if c >= x * margin), float(n_slots)) for x in seen]
    want = [min(w, float(n_slots)) for w in want]
    return (want[0], min(want[1], want[0]))

  def _adapt(self, caps, seen, spec):
    """New capacities when the measured counts come close to overflowing a buffer or leave most
    of it idle (each change costs a compilation, hence the hysteresis)."""
    want = self._fit(seen, spec.n_slots)
    if any(x > c * 0.98 for x, c in zip(seen, caps)) or any(w < c / 1.5 for w, c in zip(want, caps)):
      return want
    return caps

  def run(self, state, levels, pg_scale, per_voxel_lr):
    cfg, total = self.cfg, int(self.cfg.num_iters)
    state, extra = self.ckpt.restore_or(state, {})
    start = int(state.step)
    k = level_index(start, pg_scale)
    caps = tuple(extra["caps"]) if "caps" in extra else _caps_for(cfg, levels[k].spec)
    seen = tuple(extra["seen"]) if "seen" in extra else None   # last measured counts per ray
    spec = levels[k].spec._replace(cap_points=caps[0], cap_color=caps[1])
    state = jax.device_put(state, mesh_lib.replicated(self.mesh))
    pool = mesh_lib.replicate(self.pool, self.mesh)
    logger = log_lib.Logger(self.workdir, self.name, total, log_every=self.config.log_every)
    logger.start(start)
    if start:
      print(f"[{self.name}] resumed at step {start}", flush=True)
    fn = self.step_fn(spec, per_voxel_lr)
    t0, compiles = time.perf_counter(), 0
    level_start = pg_scale[k - 1] - 1 if k else 0   # the loop index at which this level began
    extra = lambda: {"caps": list(caps), **({"seen": list(seen)} if seen else {})}
    for s in range(start, total):
      gs = s + 1
      if gs in pg_scale:
        k += 1
        state = self._scale(state, levels[k - 1], levels[k])
        if seen:   # samples per ray grow with the resolution: start from the scaled counts
          grow = levels[k].spec.n_slots / levels[k - 1].spec.n_slots
          seen = tuple(x * grow for x in seen)
          caps = self._fit(seen, levels[k].spec.n_slots)
        else:
          caps = _caps_for(cfg, levels[k].spec)
        spec = levels[k].spec._replace(cap_points=caps[0], cap_color=caps[1])
        fn = self.step_fn(spec, per_voxel_lr)
        level_start = s
        print(f"[{self.name}] step {gs}: grid {levels[k].world_size}, {spec.n_slots} samples/ray",
              flush=True)
      if cfg.occupancy_every and (gs + cfg.occupancy_every // 2) % cfg.occupancy_every == 0:
        state = self.refresh(state, levels[k])
      state, stats = fn(state, pool)
      logging = gs % logger.log_every == 0 or gs == total
      if logging or gs - level_start in ADAPT_AFTER:
        stats = jax.device_get(stats)
        if logging:
          logger.step(gs, {**stats, "cap_points": caps[0], "cap_color": caps[1]}, force=True)
        seen = (float(stats["points_per_ray"]), float(stats["color_per_ray"]))
        new = self._adapt(caps, seen, spec)
        if new != caps:
          caps, compiles = new, compiles + 1
          spec = spec._replace(cap_points=caps[0], cap_color=caps[1])
          fn = self.step_fn(spec, per_voxel_lr)
      self.ckpt.maybe_save(gs, state, extra())
      if self.config.get("preempt_at") == f"{self.name}:{gs}":   # simulated preemption (tests)
        self.ckpt.maybe_save(gs, state, extra(), force=True)
        self.ckpt.close()
        print(f"[{self.name}] preempted after step {gs} (config.preempt_at)", flush=True)
        raise SystemExit(75)
    self.ckpt.maybe_save(total, state, extra(), force=True)
    self.ckpt.close()
    self.caps = caps
    elapsed = time.perf_counter() - t0
    print(f"[{self.name}] {total - start} steps in {elapsed:.1f}s "
          f"({(total - start) / max(elapsed, 1e-9):.2f} it/s, {compiles} capacity changes)",
          flush=True)
    self._preview(state, spec, logger, total)
    logger.close()
    return state

  def _preview(self, state, spec, logger, step):
    """One rendered val view (and its depth) to TensorBoard / images/ at the end of the stage."""
    tr = self.preview_split or self.train
    spec = evaluate.render_spec(spec)
    rgb, depth, _ = evaluate.render_image(state.params, state.model_state, spec, tr.height, tr.width,
                                          tr.focal, tr.poses[0], self.config.render.chunk)
    d = depth / max(float(depth.max()), 1e-6)
    logger.images(step, {"render": rgb, "depth": np.repeat(d[..., None], 3, -1),
                         "target": tr.images[0]})
