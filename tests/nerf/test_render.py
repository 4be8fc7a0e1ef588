"""Ray marching and compositing: a hand-computed ray, and compacted == dense rendering."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from hw4_jax.nerf import dvgo, views
from hw4_jax.nerf import grid as G
from hw4_jax.nerf import raymarch as R


def _spec(**kw):
  base = dict(n_slots=8, stepdist=0.25, interval=1.0, near=0.0, far=10.0, fast_color_thres=1e-4,
              bg=1.0, cap_points=8.0, cap_color=8.0, use_mlp=False, viewbase_pe=4)
  base.update(kw)
  return R.RenderSpec(**base)


def test_compositing_matches_hand_computed_ray():
  # density varies linearly in x (2 at x=0, 8 at x=1); colour logit k0 = (x, 1-x, 0.5)
  dens = np.zeros((2, 2, 2, 1), np.float32)
  dens[0], dens[1] = 2.0, 8.0
  k0 = np.zeros((2, 2, 2, 3), np.float32)
  k0[0] = [0.0, 1.0, 0.5]
  k0[1] = [1.0, 0.0, 0.5]
  params = {"density": jnp.asarray(dens), "k0": jnp.asarray(k0)}
  buffers = {"xyz_min": jnp.zeros(3), "xyz_max": jnp.ones(3), "act_shift": jnp.asarray(0.0),
             "mask": jnp.ones((2, 2, 2), bool)}
  o, d = jnp.asarray([[-2.0, 0.5, 0.5]]), jnp.asarray([[2.0, 0.0, 0.0]])   # |d| = 2
  out = jax.jit(lambda p, b, o, d: R.render_rays(p, b, o, d, _spec()))(params, buffers, o, d)
  # by hand: samples every 0.25 from x = 0 (distance 2 from the origin), 4 of them
  T, rgb, depth = 1.0, np.zeros(3), 0.0
  for i in range(4):
    x = 0.25 * i
    sigma = math.log1p(math.exp(2.0 + 6.0 * x))
    a = 1.0 - math.exp(-sigma * 1.0)
    w = T * a
    c = 1 / (1 + np.exp(-np.array([x, 1 - x, 0.5])))
    rgb += w * c
    depth += w * (2.0 + 0.25 * i)
    T *= 1 - a
    if T < 1e-3:   # DVGO stops the ray here
      break
  assert i == 2    # the early stop happened
  rgb += T * 1.0
  np.testing.assert_allclose(np.asarray(out["rgb"][0]), rgb, atol=1e-6)
  np.testing.assert_allclose(float(out["depth"][0]), depth, atol=1e-5)
  np.testing.assert_allclose(float(out["acc"][0]), 1 - T, atol=1e-7)
  dense = R.render_dense(params, buffers, o, d, _spec())
  np.testing.assert_allclose(np.asarray(dense["rgb"][0]), rgb, atol=1e-6)


def _random_scene(seed=0, size=(20, 24, 18)):
  rng = np.random.default_rng(seed)
  lo, hi = np.array([-1.0, -1.2, -0.9], np.float32), np.array([1.0, 1.2, 0.9], np.float32)
  cfg = type("C", (), {})()
  import ml_collections
  cfg = ml_collections.ConfigDict(dict(stepsize=0.5, fast_color_thres=1e-4, cap_points=64.0,
                                       cap_color=32.0, viewbase_pe=4))
  level = dvgo.make_level(lo, hi, int(np.prod(size)), int(np.prod(size)), cfg, 2.0, 6.0, True)
  params = dvgo.init_params(jax.random.PRNGKey(seed), level, 12, (32, 3))
  ws = level.world_size
  params["density"] = jnp.asarray(rng.normal(size=(*ws, 1)) * 4 - 2, jnp.float32)
  params["k0"] = jnp.asarray(rng.normal(size=(*ws, 12)), jnp.float32)
  mask = G.max_pool3(jnp.asarray(rng.uniform(size=ws) < 0.05))
  buffers = {"xyz_min": jnp.asarray(lo), "xyz_max": jnp.asarray(hi),
             "act_shift": jnp.asarray(dvgo.act_shift(1e-2)), "mask": mask}
  # rays from cameras on a sphere of radius 4 towards points in the box
  n = 300
  eye = rng.normal(size=(n, 3))
  eye = 4 * eye / np.linalg.norm(eye, axis=1, keepdims=True)
  tgt = rng.uniform(lo, hi, size=(n, 3))
  d = (tgt - eye) * rng.uniform(0.3, 0.5, size=(n, 1))   # un-normalised directions
  return params, buffers, level.spec, jnp.asarray(eye, jnp.float32), jnp.asarray(d, jnp.float32)


def test_skipped_render_equals_dense_render():
  params, buffers, spec, o, d = _random_scene()
  dense = jax.jit(lambda p, b, o, d: R.render_dense(p, b, o, d, spec))(params, buffers, o, d)
  big = spec._replace(cap_points=float(spec.n_slots), cap_color=float(spec.n_slots))
  comp = jax.jit(lambda p, b, o, d: R.render_rays(p, b, o, d, big))(params, buffers, o, d)
  assert bool(np.all(comp["ray_ok"]))
  assert 0 < int(comp["n_points"]) < o.shape[0] * spec.n_slots   # something was skipped
  for k in ("rgb", "depth", "acc"):
    np.testing.assert_allclose(np.asarray(comp[k]), np.asarray(dense[k]), atol=1e-5)
  # exact-size buffers (what evaluation uses) give the same image
  rgb, depth, acc = views.Renderer(params, buffers, views.render_spec(spec)).rays(o, d)
  np.testing.assert_allclose(np.asarray(rgb), np.asarray(dense["rgb"]), atol=1e-5)
  np.testing.assert_allclose(np.asarray(depth), np.asarray(dense["depth"]), atol=1e-5)


def test_overflow_is_flagged_and_other_rays_stay_exact():
  params, buffers, spec, o, d = _random_scene(seed=1)
  run = lambda fn, sp: jax.jit(lambda p, b, o, d: fn(p, b, o, d, sp))(params, buffers, o, d)
  dense = run(R.render_dense, spec)
  full = run(R.render_rays, spec._replace(cap_points=400., cap_color=400.))
  per_ray = float(full["n_points"]) / o.shape[0]
  out = run(R.render_rays, spec._replace(cap_points=per_ray * 0.6, cap_color=per_ray * 0.6))
  ok = np.asarray(out["ray_ok"])
  assert 0 < ok.sum() < ok.size          # some rays overflowed, the first ones did not
  assert ok[0] and not ok[-1]
  np.testing.assert_allclose(np.asarray(out["rgb"])[ok], np.asarray(dense["rgb"])[ok], atol=1e-5)


def test_depth_colour_map_is_turbo_masked_by_opacity():
  depth = np.array([[2.0, 4.0, 6.0, 0.0]]) * np.array([[1.0, 1.0, 1.0, 0.0]])
  acc = np.array([[1.0, 1.0, 1.0, 0.0]])
  rgb = views.depth_rgb(depth, acc, 2.0, 6.0)
  from matplotlib import colormaps
  np.testing.assert_allclose(rgb[0, :3], colormaps["turbo"]([0.0, 0.5, 1.0])[:, :3], atol=1e-6)
  assert rgb[0, 0, 2] > rgb[0, 0, 0] and rgb[0, 2, 0] > rgb[0, 2, 2]   # near blue, far red
  np.testing.assert_array_equal(rgb[0, 3], 0.0)                      # nothing hit: black
  half = views.depth_rgb(np.array([[2.0]]), np.array([[0.5]]), 2.0, 6.0)  # depth / acc = 4
  np.testing.assert_allclose(half[0, 0], 0.5 * np.asarray(colormaps["turbo"](0.5)[:3]), atol=1e-6)


def test_budgets_grow_when_nearly_full_and_shrink_only_when_asked():
  assert R.fit_budgets((42.0, 21.0), 185, 1.3) == (64.0, 32.0)          # 54.6 -> 64, 27.3 -> 32
  assert R.adapt_budgets((80.0, 40.0), (42.0, 21.0), 185, 1.3) == (80.0, 40.0)    # within 2/3
  assert R.adapt_budgets((80.0, 40.0), (42.0, 21.0), 185, 1.3, shrink_below=1.0) == (64.0, 32.0)
  assert R.adapt_budgets((80.0, 40.0), (20.0, 10.0), 185, 1.3, shrink_below=0.0) == (80.0, 40.0)
  # a nearly full budget grows whatever shrink_below says
  assert R.adapt_budgets((48.0, 32.0), (47.5, 20.0), 185, 1.3, shrink_below=0.0) == (64.0, 32.0)
