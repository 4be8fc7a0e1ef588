"""DVGO configs. `default` = the official DirectVoxGO (v2) values = the seed's setting B.

Presets: default, setting_a (seed's A: longer, bigger MLP), cpu (lego at downscale 4 on a 2-core CPU
in <= 15 min), demo (the generated demo scene, a few CPU minutes), compare (trains several presets on
one scene and writes the comparison table). Deviations from the official values live only in cpu /
demo, each with the reason.
"""

import ml_collections

from hw4_jax.core import presets


def _stage(**kw):
  return ml_collections.ConfigDict(kw)


def default():
  c = ml_collections.ConfigDict()
  c.task = "dvgo"
  c.mode = "train"            # train (+ eval on the val split) | eval | render
  c.seed = 777                # the official run.py seed
  c.checkpoint_every = 1000
  c.log_every = 100
  c.preempt_at = ""           # "<stage>:<step>": save and exit there (to test exact resume)

  c.data = ml_collections.ConfigDict()
  c.data.scene_dir = ""       # a Blender scene folder; empty = the generated demo scene
  c.data.downscale = 1        # integer factor, area averaging, focal scaled
  c.data.near = 2.0
  c.data.far = 6.0

  # Shared by both stages (official coarse_train / *_model_and_render). Implementation sizes, not
  # DVGO settings: cap_* are per-ray budgets of the compacted sample buffers (initial values; adapted
  # to the measured counts while training); unique_frac is the sparse Adam's list of distinct voxels
  # per step as a fraction of its gradient rows (measured 0.18-0.28 on lego; overflow is logged).
  common = dict(batch_size=8192, lr_density=0.1, lr_k0=0.1, lr_decay=20.0, weight_main=1.0,
                stepsize=0.5, occupancy_every=1000, decay_after_scale=1.0, cap_margin=1.3,
                unique_frac=0.4)
  c.coarse = _stage(**common, num_iters=5000, num_voxels=1024000, num_voxels_base=1024000,
                    alpha_init=1e-6, fast_color_thres=1e-7, pervoxel_lr=True,
                    pervoxel_lr_downrate=1, pervoxel_count="samples", maskout_near_cam_vox=True, weight_entropy_last=0.01,
                    weight_rgbper=0.1, cap_points=192.0, cap_color=192.0)
  c.fine = _stage(**common, num_iters=20000, num_voxels=160 ** 3, num_voxels_base=160 ** 3,
                  alpha_init=1e-2, fast_color_thres=1e-4, pg_scale=(1000, 2000, 3000, 4000),
                  world_bound_scale=1.05, bbox_thres=1e-3, mask_cache_thres=1e-3,
                  rgbnet_dim=12, rgbnet_depth=3, rgbnet_width=128, viewbase_pe=4, lr_rgbnet=1e-3,
                  weight_entropy_last=0.001, weight_rgbper=0.01, skip_zero_grad=True,
                  cap_points=96.0, cap_color=64.0)

  c.eval = ml_collections.ConfigDict()
  c.eval.split = "val"
  c.eval.lpips = True

  c.render = ml_collections.ConfigDict()
  c.render.transforms = ""    # any transforms JSON (poses only is fine)
  c.render.output_dir = ""    # default: WORKDIR/render
  c.render.depth = False      # also write <name>_depth.png
  c.render.orbit_frames = 0   # > 0: also write orbit.gif around the scene
  c.render.orbit_radius = 0.0  # 0: (near + far) / 2
  c.render.orbit_elevation = 30.0
  c.render.chunk = 8192       # rays per render call (buffers sized from each chunk's counts)
  return c


def setting_a():
  """The seed's setting A: longer schedules and a 4-layer, 256-wide colour MLP."""
  c = default()
  c.coarse.num_iters = 15000
  c.fine.num_iters = 60000
  c.fine.rgbnet_depth = 4
  c.fine.rgbnet_width = 256
  return c


def cpu():
  """Lego at downscale 4 (200x200) on a 2-core CPU in <= 15 minutes."""
  c = default()
  c.data.scene_dir = "../shared/data/nerf_synthetic/lego"
  c.data.downscale = 4
  # A fine checkpoint (grids + Adam state at 160^3) is ~0.6 GB that orbax compresses on the same two
  # cores that train: every 1000 steps, not 500 (each stage's end is always saved).
  c.checkpoint_every = 1000
  c.log_every = 100
  # Coarse: it only has to find the bbox and the mask cache. Fewer voxels (80^3, not 100^3), fewer
  # and smaller steps, and a higher alpha_init (1e-6 leaves gradients under Adam's eps for hundreds
  # of steps, a large part of a short budget).
  c.coarse.num_iters = 400
  c.coarse.batch_size = 2048
  c.coarse.num_voxels = 80 ** 3
  c.coarse.num_voxels_base = 80 ** 3
  c.coarse.alpha_init = 1e-4
  # Views per voxel by projecting voxels into the cameras: the official ray-sample count took 48 s
  # here even on 1/16 of the rays; projection takes about a second.
  c.coarse.pervoxel_count = "projection"
  # Fine: 2048-ray steps beat 8192 at equal CPU time. The colour MLP is the largest single cost of a
  # step (~30-60 coloured samples per ray); a 64-wide MLP is ~4x cheaper per sample than 128 (the
  # matmuls run from cache). The schedule is compressed to fit the budget (scaling every 250 steps,
  # lr down to 0.1x over 2000 steps, the mask cache refreshed every 250 steps so empty space stops
  # costing samples sooner).
  c.fine.rgbnet_width = 64
  # Samples every voxel (stepsize 1.0, not 0.5) on a 128^3 grid (not 160^3; the 200x200 images do not
  # resolve more): half the slots and samples per ray, the fine step ~2x faster (measured on lego:
  # 2000 fine steps ~22 min (projected) -> 8 min; val PSNR 32.3, SSIM 0.970 in 581 s of training).
  c.fine.stepsize = 1.0
  c.fine.num_voxels = 128 ** 3
  c.fine.num_voxels_base = 128 ** 3
  c.fine.num_iters = 2000
  c.fine.batch_size = 2048
  c.fine.pg_scale = (250, 500, 750, 1000)
  c.fine.lr_decay = 2.0
  c.fine.occupancy_every = 250
  return c


def demo():
  """The generated demo scene (100x100): a few minutes on a CPU, >= 25 PSNR on its val views."""
  c = cpu()
  c.data.scene_dir = ""                # generated and cached on first use
  c.data.downscale = 1
  # A 100x100 scene of three simple solids needs fewer voxels and steps than lego.
  c.coarse.num_iters = 400
  c.coarse.num_voxels = 64 ** 3
  c.coarse.num_voxels_base = 64 ** 3
  c.fine.num_iters = 1500
  c.fine.num_voxels = 96 ** 3
  c.fine.num_voxels_base = 96 ** 3
  c.fine.pg_scale = (200, 400, 600, 800)
  c.fine.lr_decay = 2.0
  c.fine.occupancy_every = 400
  return c


def compare():
  """`python -m hw4_jax.main --config=configs/dvgo.py:compare --workdir=DIR`: trains each preset in
  `compare.presets` on `data.scene_dir` (in DIR/<preset>) and writes DIR/comparison.{md,json}."""
  c = default()
  c.task = "dvgo_compare"
  c.compare = ml_collections.ConfigDict()
  c.compare.presets = "setting_a,default"   # comma-separated preset names of this file
  c.compare.overrides = ""                  # e.g. "fine.num_iters=200,coarse.num_iters=100"
  c.data.scene_dir = "../shared/data/nerf_synthetic/lego"
  return c


def get_config(arg=None):
  return presets.choose(arg, {"default": default, "setting_a": setting_a, "cpu": cpu,
                              "demo": demo, "compare": compare})
