"""Where a DVGO fine step spends its time, on a trained workdir's final grid.

  python bench/dvgo_profile.py --workdir=W [--steps=20]

W is a finished DVGO workdir (model.npz, config.json). The model's final fine grid and mask cache,
a fresh optimizer and the training rays that hit the mask cache stand in for the last fine level.
Each part is its own jitted function on the same batch, timed over `--steps` calls after a warm-up:

  ray batch   pixel draw, rays with intrinsics, target gather
  march       samples in the mask cache, compaction, density lookup and compositing (forward)
  mlp         the colour MLP forward + backward on the step's coloured points
  loss+grads  the whole loss and its sparse gradients (includes march and mlp)
  adam        the sparse Adam update of the grids and the MLP
  step        the training step as `StageRunner` jits it (everything)

One line per part (ms, share of the step), then one result line. A part's time measured alone
includes its own launch and memory traffic, so the parts do not add up exactly to the step.
The coarse stage is reported from the workdir's metrics.json (`coarse_seconds`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hw4_jax.core import mesh as mesh_lib  # noqa: E402
from hw4_jax.core.state import TrainState  # noqa: E402
from hw4_jax.nerf import dvgo, masked_adam, mlp, scene  # noqa: E402
from hw4_jax.nerf import grid as grid_lib  # noqa: E402
from hw4_jax.nerf import rays as rays_lib  # noqa: E402
from hw4_jax.nerf import raymarch as R  # noqa: E402
from hw4_jax.nerf import stage as stage_lib  # noqa: E402


def timed(fn, *args, steps: int) -> float:
  """Median wall time (ms) of `fn(*args)` after one warm-up call."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))


def chained(fn, state, steps: int) -> float:
  """Median wall time (ms) of `state = fn(state)` (a function that donates its input)."""
  state = jax.block_until_ready(fn(state))
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state = jax.block_until_ready(fn(state))
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--workdir", required=True)
  ap.add_argument("--steps", type=int, default=20)
  args = ap.parse_args()
  with open(os.path.join(args.workdir, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  fc = config.fine
  params, buffers, meta = dvgo.load_model(args.workdir)
  spec = R.RenderSpec(**meta["spec"])._replace(cap_points=float(meta["caps"][0]),
                                                cap_color=float(meta["caps"][1]))
  sc = scene.configured(config.data)
  train = sc.load("train", config.data.downscale, config.data.white_bkgd)
  hit = stage_lib.rays_hitting(train, buffers, spec)
  pool = stage_lib.make_pool(train, hit)
  weights = (float(fc.weight_main), float(fc.weight_entropy_last), float(fc.weight_rgbper))
  batch = int(fc.batch_size)

  def make_state():
    # copies: the timed updates donate (overwrite) their state
    return TrainState.create(params=jax.tree.map(jnp.copy, params), tx=stage_lib.make_tx(fc), rng=jax.random.PRNGKey(0),
                             model_state=jax.tree.map(jnp.copy, buffers), update_fn=masked_adam.apply_updates)

  @jax.jit
  def ray_batch(pool):
    pix = stage_lib.draw_pixels(jax.random.PRNGKey(1), pool, batch)
    o, d = rays_lib.rays_from_pixels(pool["poses"], pool["intrinsics"], pix, train.height,
                                     train.width)
    return o, d, pool["images"][pix]

  rays_o, rays_d, target = ray_batch(pool)

  @jax.jit
  def march(params, rays_o, rays_d):
    smp = R.march(buffers, rays_o, rays_d, spec)
    ids, w = grid_lib.corners(smp.pts, buffers["xyz_min"], buffers["xyz_max"],
                              params["density"].shape)
    density = grid_lib.interp(params["density"].reshape(-1, 1), ids, w)[:, 0]
    _, wts, last = R.composite(density, smp, buffers, spec, batch)
    return R.select_color(wts, smp, spec, batch), last

  @jax.jit
  def loss_grads(params, rays_o, rays_d, target):
    return dvgo.loss_and_grads(params, buffers, rays_o, rays_d, target, spec, weights)

  grads, stats = loss_grads(params, rays_o, rays_d, target)
  n_color = int(stats["color_per_ray"] * batch)
  cap_q = R.capacity(batch, spec.cap_color, spec.n_slots)   # the step's colour-buffer size
  feat = jax.random.normal(jax.random.PRNGKey(2), (cap_q, params["k0"].shape[-1]))
  emb = R.view_embedding(R.unit(rays_d), spec.viewbase_pe)
  ray = jax.random.randint(jax.random.PRNGKey(3), (cap_q,), 0, batch)

  @jax.jit
  def mlp_fwd_bwd(rgbnet, feat):
    out, vjp = jax.vjp(lambda net, f: mlp.rgb(net, f, emb, ray, n_color), rgbnet, feat)
    return vjp(jnp.ones_like(out))

  # The update writes rows into the grids and the Adam moments in place, as in the step: the state
  # is donated and each call is fed the previous call's output.
  adam = jax.jit(lambda state, grads: state.apply_gradients(grads), donate_argnums=(0,))

  runner = stage_lib.StageRunner(config, args.workdir, "fine", fc, mesh_lib.make_mesh(), train,
                                 pool)
  step = runner.step_fn(spec, False)

  parts = {"ray batch": timed(ray_batch, pool, steps=args.steps),
           "march": timed(march, params, rays_o, rays_d, steps=args.steps),
           "mlp": timed(mlp_fwd_bwd, params["rgbnet"], feat, steps=args.steps),
           "loss+grads": timed(loss_grads, params, rays_o, rays_d, target, steps=args.steps),
           "adam": chained(lambda st: adam(st, grads), make_state(), steps=args.steps),
           "step": chained(lambda st: step(st, pool)[0], make_state(), steps=args.steps)}
  total = parts["step"]
  print(f"fine grid {meta['world_size']}, {batch} rays/step, {stats['points_per_ray']:.1f} samples "
        f"and {stats['color_per_ray']:.1f} coloured points per ray, MLP "
        f"{len(params['rgbnet']['layers'])} layers x {params['rgbnet']['layers'][0]['w'].shape[1]}")
  for name, ms in parts.items():
    print(f"  {name:<11} {ms:8.1f} ms  {100 * ms / total:5.1f} %")
  coarse = meta.get("coarse_seconds")
  fine = meta.get("train_seconds", 0) - (coarse or 0)
  print(f"RESULT dvgo_profile step_ms={total:.1f} mlp_ms={parts['mlp']:.1f} "
        f"march_ms={parts['march']:.1f} adam_ms={parts['adam']:.1f} "
        f"coarse_stage_s={coarse if coarse is None else round(coarse, 1)} "
        f"fine_stage_s={fine:.1f} devices={jax.device_count()}")


if __name__ == "__main__":
  main()
