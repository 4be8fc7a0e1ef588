"""DVGO (`task=dvgo`). `default` = the official DirectVoxGO (v2) values = the reference report's
setting B; `setting_a` = its setting A. `cpu` and `demo` change what a 2-core CPU needs (each change
says why; the measurements behind them are in docs/tuning-log.md). `compare` trains several presets
on one scene (`task=dvgo_compare`). `cpu`, `cpu_fast` and `compare` read ../shared/data/nerf_synthetic/lego.
"""

import ml_collections
from ml_collections import config_dict

import common


def _stage(**kw):
  return ml_collections.ConfigDict(kw)


def default():
  c = ml_collections.ConfigDict()
  c.task = "dvgo"
  c.mode = "train"            # train (+ eval) | eval | render | export | view
  c.seed = 777                # the official run.py seed
  # One checkpoint per stage: a finished workdir keeps only each stage's last one.
  common.loop_keys(c, log_every=100, checkpoint_every=1000, keep_checkpoints=1)

  c.data = ml_collections.ConfigDict()
  c.data.scene_dir = ""       # a Blender or nerfstudio scene folder; empty = the generated demo scene
  c.data.downscale = 1        # integer factor, area averaging, intrinsics scaled
  c.data.white_bkgd = True    # composite transparent pixels on white (False: black)
  # None: Blender scenes 2 / 6 (the official values); nerfstudio scenes derived from the cameras.
  c.data.near = config_dict.placeholder(float)
  c.data.far = config_dict.placeholder(float)

  # Shared by both stages (official coarse_train / *_model_and_render). Implementation sizes, not
  # DVGO settings: cap_* are per-ray budgets of the compacted sample buffers (initial values; adapted
  # to the measured counts while training); unique_frac is the sparse Adam's list of distinct voxels
  # per step as a fraction of its gradient rows (measured 0.18-0.28 on lego; overflow is logged).
  common_stage = dict(batch_size=8192, lr_density=0.1, lr_k0=0.1, lr_decay=20.0, weight_main=1.0,
                      stepsize=0.5, occupancy_every=1000, decay_after_scale=1.0, cap_margin=1.3,
                      unique_frac=0.4)
  c.coarse = _stage(**common_stage, num_iters=5000, num_voxels=1024000, num_voxels_base=1024000,
                    alpha_init=1e-6, fast_color_thres=1e-7, pervoxel_lr=True,
                    pervoxel_lr_downrate=1, pervoxel_count="samples", maskout_near_cam_vox=True,
                    weight_entropy_last=0.01, weight_rgbper=0.1, cap_points=192.0, cap_color=192.0)
  c.fine = _stage(**common_stage, num_iters=20000, num_voxels=160 ** 3, num_voxels_base=160 ** 3,
                  alpha_init=1e-2, fast_color_thres=1e-4, pg_scale=(1000, 2000, 3000, 4000),
                  world_bound_scale=1.05, bbox_thres=1e-3, mask_cache_thres=1e-3,
                  rgbnet_dim=12, rgbnet_depth=3, rgbnet_width=128, viewbase_pe=4, lr_rgbnet=1e-3,
                  weight_entropy_last=0.001, weight_rgbper=0.01, skip_zero_grad=True,
                  cap_points=96.0, cap_color=64.0)

  c.eval = ml_collections.ConfigDict()
  c.eval.split = ""           # '' = test if the scene has it, else val, else the held-out frames
  c.eval.lpips = True
  c.eval.curve_every_s = 0.0  # > 0: PSNR of `curve_views` views every this many seconds of training
  c.eval.curve_views = 10

  c.render = ml_collections.ConfigDict()
  c.render.transforms = ""    # any transforms JSON (poses only is fine)
  c.render.output_dir = ""    # default: WORKDIR/render
  c.render.depth = False      # also write <name>_depth.png
  c.render.orbit_frames = 0   # > 0: also write orbit_rgb.mp4 / orbit_depth.mp4 around the scene
  c.render.orbit_radius = 0.0  # 0: the training cameras' mean distance to the scene centre
  c.render.orbit_elevation = 30.0
  c.render.fps = 24.0
  c.render.after_train = False  # render the orbit videos at the end of training
  c.render.chunk = 8192       # rays per render call

  c.export = ml_collections.ConfigDict()
  c.export.alpha_thres = 0.05  # mode=export: the surface where alpha crosses this (docs/outputs.md)

  # The browser viewer (docs/viewer.md; needs the 'viewer' extra): mode=view, or during training.
  c.view = ml_collections.ConfigDict()
  c.view.host = "127.0.0.1"   # 0.0.0.0: reachable from other machines (no authentication)
  c.view.port = 8080          # the next free port if taken (the URL printed says which); 0: any
  c.view.resolution = 0       # longer side of the full-resolution image; 0: the training images'
  c.view.preview_scale = 4    # while the camera moves: resolution / preview_scale
  c.view.during_train = False  # mode=train also serves the viewer, showing the current grids
  c.view.update_every = 100   # during training: new grids for the viewer every this many steps
  c.view.render_share = 0.25  # during training: the renders take at most this share of the time
  return c


def setting_a():
  """The reference report's setting A: longer schedules and a 4-layer, 256-wide colour MLP."""
  c = default()
  c.coarse.num_iters = 15000
  c.fine.num_iters = 60000
  c.fine.rgbnet_depth = 4
  c.fine.rgbnet_width = 256
  return c


def cpu():
  """Lego at downscale 4 (200x200) on a 2-core CPU in <= 10 minutes of training."""
  c = default()
  c.data.scene_dir = "../shared/data/nerf_synthetic/lego"
  c.data.downscale = 4
  # Coarse: it only has to find the bbox and the mask cache: 80^3 voxels, 400 steps of 2048 rays, and
  # alpha_init 1e-4 (at 1e-6 the gradients stay under Adam's eps for hundreds of steps).
  c.coarse.num_iters = 400
  c.coarse.batch_size = 2048
  c.coarse.num_voxels = 80 ** 3
  c.coarse.num_voxels_base = 80 ** 3
  c.coarse.alpha_init = 1e-4
  # Views per voxel by projecting the voxels into the cameras (~1 s; the official ray-sample count
  # takes ~50 s on this CPU).
  c.coarse.pervoxel_count = "projection"
  # Fine: 2048-ray steps, a 64-wide colour MLP (the largest cost of a step), one sample per voxel on
  # a 128^3 grid (200x200 images do not resolve more), the scaling done by step 1000 and the rest of
  # the 10 minutes at full resolution: 4000 steps, the lr down to 0.1x at the end.
  c.fine.rgbnet_width = 64
  c.fine.stepsize = 1.0
  c.fine.num_voxels = 128 ** 3
  c.fine.num_voxels_base = 128 ** 3
  c.fine.num_iters = 4000
  c.fine.batch_size = 2048
  c.fine.pg_scale = (250, 500, 750, 1000)
  c.fine.lr_decay = 4.0
  c.fine.occupancy_every = 250
  return c


def cpu_fast():
  """Lego at 200x200 in under 3 minutes of training: the "did my scene load right?" run
  (docs/benchmarks.md has its val PSNR and train seconds; the tuning in docs/tuning-log.md)."""
  c = cpu()
  # Fewer, cheaper coarse steps (it only finds the bbox and the mask cache: one sample per voxel);
  # a 100^3 fine grid (as good per step as 128^3 this early, and cheaper) reached by three scalings.
  c.coarse.num_iters = 300
  c.coarse.stepsize = 1.0
  c.fine.num_voxels = 100 ** 3
  c.fine.num_voxels_base = 100 ** 3
  c.fine.num_iters = 2000
  # Colour only where the alpha weight exceeds 3e-3 (official 1e-4): 8 instead of 20 coloured points
  # per ray at the end (the MLP and the colour grid's Adam were most of a step), so 2000 steps fit.
  c.fine.fast_color_thres = 3e-3
  c.fine.pg_scale = (150, 300, 450)
  c.fine.lr_decay = 1.4
  c.fine.occupancy_every = 150
  # A short coarse stage leaves faint density (alpha 1e-3 .. 5e-2) around and under the object:
  # at 0.05 the fine bbox is ~1.8x smaller in volume, so the same voxels are finer.
  c.fine.bbox_thres = 0.05
  return c


def demo():
  """The generated demo scene (100x100, three simple solids): a few CPU minutes, >= 25 PSNR on val."""
  c = cpu()
  c.data.scene_dir = ""                # generated and cached on first use
  c.data.downscale = 1
  c.coarse.num_voxels = 64 ** 3
  c.coarse.num_voxels_base = 64 ** 3
  c.fine.num_iters = 1500
  c.fine.lr_decay = 2.0
  c.fine.num_voxels = 96 ** 3
  c.fine.num_voxels_base = 96 ** 3
  c.fine.pg_scale = (200, 400, 600, 800)
  c.fine.occupancy_every = 400
  return c


PRESETS = {"default": default, "setting_a": setting_a, "cpu": cpu, "cpu_fast": cpu_fast,
           "demo": demo}


def compare():
  """Trains the presets named in `compare.presets` on one scene (DIR/<preset>) and writes
  DIR/comparison.{md,json}. `runs.<preset>` is each preset's whole config (override any key:
  `--config.runs.setting_a.fine.num_iters=100`); every run uses this config's `data`."""
  c = ml_collections.ConfigDict()
  c.task = "dvgo_compare"
  c.mode = "train"
  c.data = default().data
  c.data.scene_dir = "../shared/data/nerf_synthetic/lego"
  c.compare = ml_collections.ConfigDict()
  c.compare.presets = "setting_a,default"   # comma-separated names of runs.*
  c.runs = ml_collections.ConfigDict()
  for name, preset in PRESETS.items():
    run = preset()
    del run.data
    run.preset = name
    c.runs[name] = run
  return c


def get_config(arg=None):
  return common.choose(arg, {**PRESETS, "compare": compare})
