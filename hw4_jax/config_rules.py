"""The rule of every config key, checked before any work starts: a bad value is one `UserError` that
names the key, instead of a crash minutes (or a whole coarse stage) later.

`check(config)` walks every key of the config of its task; a key without a rule is an error too, so
a new key needs one (tests/test_config_rules.py checks every key of every preset). Sub-configs (the
sweep's `byol` / `supervised` / `classifier`, the comparison's `runs.<preset>`) are checked with
their own task's rules.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from hw4_jax.core.errors import UserError

Rule = Callable[[Any], "str | None"]   # None when the value is fine, else what it should be


def _num(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def Int(lo: int | None = None, hi: int | None = None) -> Rule:
  def rule(v):
    if not isinstance(v, int) or isinstance(v, bool) or (lo is not None and v < lo) or (
        hi is not None and v > hi):
      return "an integer" + (f" >= {lo}" if lo is not None else "") + (
          f" and <= {hi}" if hi is not None else "")
    return None
  return rule


def Float(lo: float | None = None, hi: float | None = None, *, above: float | None = None,
          below: float | None = None) -> Rule:
  """A finite number in [lo, hi] (`above` / `below`: strict bounds)."""
  def rule(v):
    bad = not _num(v) or not math.isfinite(v)
    bad = bad or (lo is not None and v < lo) or (hi is not None and v > hi)
    bad = bad or (above is not None and v <= above) or (below is not None and v >= below)
    if bad:
      parts = [f">= {lo}" if lo is not None else "", f"> {above}" if above is not None else "",
               f"<= {hi}" if hi is not None else "", f"< {below}" if below is not None else ""]
      return "a finite number" + "".join(f" {p}" for p in parts if p)
    return None
  return rule


def Optional(rule: Rule) -> Rule:
  """None, or what `rule` accepts."""
  return lambda v: None if v is None else (lambda why: why and f"None or {why}")(rule(v))


def Bool() -> Rule:
  return lambda v: None if isinstance(v, bool) else "True or False"


def Str(choices: tuple[str, ...] | None = None, pattern: str | None = None,
        what: str | None = None) -> Rule:
  def rule(v):
    if not isinstance(v, str):
      return "a string"
    if choices is not None and v not in choices:
      return "one of " + ", ".join(repr(c) for c in choices)
    if pattern is not None and not re.fullmatch(pattern, v):
      return what or f"a string matching {pattern}"
    return None
  return rule


def Tuple(elem: Rule, n: int | None = None, increasing: bool = False, what: str = "") -> Rule:
  def rule(v):
    bad = not isinstance(v, (tuple, list)) or (n is not None and len(v) != n)
    bad = bad or any(elem(x) for x in (v if isinstance(v, (tuple, list)) else ()))
    bad = bad or (increasing and any(b <= a for a, b in zip(v, v[1:])))
    if bad:
      return what or (f"a tuple of {n if n is not None else 'any number of'} values, each "
                      f"{elem(object())}")
    return None
  return rule


PATH = Str()
FRACTION = Float(0.0, 1.0)
LOOP = {
    "task": Str(), "mode": Str(), "seed": Int(0), "preset": Str(),
    "log_every": Int(1), "checkpoint_every": Int(1), "keep_checkpoints": Int(1),
    "time_budget_s": Float(0.0),
    "preempt_at": Str(pattern=r"|[a-z_]+:\d+", what="'' or '<loop>:<step>', e.g. 'fine:15'"),
}

_STAGE = {
    "batch_size": Int(1), "lr_density": Float(0.0), "lr_k0": Float(0.0), "lr_decay": Float(above=0),
    "weight_main": Float(0.0), "weight_entropy_last": Float(0.0), "weight_rgbper": Float(0.0),
    "stepsize": Float(above=0), "occupancy_every": Int(0), "decay_after_scale": Float(0.0),
    "cap_margin": Float(1.0), "unique_frac": Float(above=0, hi=1.0), "num_iters": Int(1),
    "num_voxels": Int(8), "num_voxels_base": Int(8), "alpha_init": Float(above=0, below=1),
    "fast_color_thres": Float(0.0, below=1), "cap_points": Float(above=0),
    "cap_color": Float(above=0),
}
DVGO = {
    **LOOP,
    "data.scene_dir": PATH, "data.downscale": Int(1), "data.white_bkgd": Bool(),
    "data.near": Optional(Float(0.0)), "data.far": Optional(Float(above=0)),
    **{f"coarse.{k}": r for k, r in _STAGE.items()},
    "coarse.pervoxel_lr": Bool(), "coarse.pervoxel_lr_downrate": Int(1),
    "coarse.pervoxel_count": Str(("samples", "projection")), "coarse.maskout_near_cam_vox": Bool(),
    **{f"fine.{k}": r for k, r in _STAGE.items()},
    "fine.pg_scale": Tuple(Int(1), increasing=True,
                           what="a tuple of increasing step numbers >= 1, e.g. (250, 500)"),
    "fine.world_bound_scale": Float(1.0), "fine.bbox_thres": Float(0.0, below=1),
    "fine.mask_cache_thres": Float(0.0, below=1), "fine.rgbnet_dim": Int(1),
    "fine.rgbnet_depth": Int(1), "fine.rgbnet_width": Int(1), "fine.viewbase_pe": Int(0),
    "fine.lr_rgbnet": Float(0.0), "fine.skip_zero_grad": Bool(),
    "eval.split": Str(("", "train", "val", "test")),
    "eval.lpips": Bool(), "eval.curve_every_s": Float(0.0), "eval.curve_views": Int(1),
    "render.transforms": PATH, "render.output_dir": PATH, "render.depth": Bool(),
    "render.orbit_frames": Int(0), "render.orbit_radius": Float(0.0),
    "render.orbit_elevation": Float(-90.0, 90.0), "render.chunk": Int(256),
    "render.fps": Float(above=0), "render.after_train": Bool(),
    "export.alpha_thres": Float(above=0, below=1),
    "view.host": Str(pattern=r"\S+", what="a host name or address, e.g. 127.0.0.1 or 0.0.0.0"),
    "view.port": Int(0, 65535), "view.resolution": Int(0, 4096), "view.preview_scale": Int(1, 16),
    "view.during_train": Bool(), "view.update_every": Int(1),
    "view.render_share": Float(above=0, hi=1.0),
}
COMPARE = {
    "task": Str(), "mode": Str(), "preset": Str(),
    "compare.presets": Str(pattern=r"[\w ,]*", what="comma-separated preset names"),
    **{k: r for k, r in DVGO.items() if k.startswith("data.")},
}


def _data(prefix: str) -> dict:
  return {f"{prefix}.source": Str(pattern=r"|demo|tfds:.+", what="'', 'demo' or 'tfds:<name>'"),
          **{f"{prefix}.{k}": PATH for k in ("train_csv", "train_dir", "val_csv", "val_dir",
                                             "tfds_data_dir", "demo_dir")},
          f"{prefix}.image_size": Int(8), f"{prefix}.num_threads": Int(1),
          f"{prefix}.num_workers": Int(0)}


SSL = {
    **LOOP, **_data("data"),
    "model.backbone": Str(("resnet18", "resnet50")), "model.width": Int(1),
    "model.dtype": Str(("auto", "float32", "bfloat16")), "model.conv": Str(("auto", "xla", "gemm")),
    "augment.crop_size": Int(8),
    "augment.crop_scale": Tuple(Float(above=0, hi=1.0), 2, what="(min, max) area fractions in (0, 1]"),
    "augment.crop_ratio": Tuple(Float(above=0), 2, what="(min, max) aspect ratios > 0"),
    "augment.brightness": Float(0.0), "augment.contrast": Float(0.0),
    "augment.saturation": Float(0.0), "augment.hue": Float(0.0, 0.5),
    "augment.p_jitter": FRACTION, "augment.p_gray": FRACTION, "augment.p_flip": FRACTION,
    "augment.p_blur": FRACTION,
    "augment.blur_sigma": Tuple(Float(above=0), 2, what="(min, max) sigmas > 0"),
    "optim.name": Str(("adam", "lars")), "optim.lr": Float(above=0), "optim.warmup_steps": Int(0),
    "optim.b1": Float(0.0, below=1), "optim.b2": Float(0.0, below=1),
    "optim.weight_decay": Float(0.0), "optim.momentum": Float(0.0, below=1),
    "train.batch_size": Int(1), "train.num_epochs": Int(0), "train.num_steps": Int(0),
}
PRETRAIN = {
    **SSL, **_data("knn"), "knn.k": Int(1), "knn.every": Int(0), "knn.batch_size": Int(1),
    "probe.every": Int(0), "probe.holdout": Float(above=0, below=1), "probe.steps": Int(1),
    "probe.l2": Tuple(Float(above=0), what="a tuple of one or more penalties > 0"),
    "byol.hidden_dim": Int(1), "byol.proj_dim": Int(1), "byol.tau_base": Float(0.0, 1.0),
    "byol.tau_schedule": Str(("constant", "cosine")), "byol.predictor_lr_mult": Float(above=0),
}
CLASSIFIER = {
    **SSL, "pretrained": PATH, "freeze_backbone": Bool(),
    "head.hidden": Int(1), "head.layers": Int(1), "head.dropout": Float(0.0, below=1),
    "head.slope": Float(0.0), "train.eval_every": Int(0), "train.eval_batch_size": Int(1),
    "predict.csv": PATH, "predict.image_dir": PATH, "predict.output_csv": PATH,
    "predict.batch_size": Int(1),
}
TRANSFER = {
    "task": Str(), "mode": Str(), "preset": Str(),
    "settings": Str(pattern=r"[A-Ea-e]+", what="letters of A-E, e.g. 'ACE'"),
    "byol_workdir": PATH, "supervised_workdir": PATH,
    **{k: r for k, r in CLASSIFIER.items() if k.startswith(("data.", "model."))},
}
RULES = {"dvgo": DVGO, "dvgo_compare": COMPARE, "byol": PRETRAIN, "supervised": PRETRAIN,
         "classifier": CLASSIFIER, "transfer": TRANSFER}
NESTED = {"dvgo_compare": "runs", "transfer": ("byol", "supervised", "classifier")}


def flatten(config, prefix: str = "") -> dict:
  out = {}
  for key, value in config.items():
    if hasattr(value, "items"):
      out.update(flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def _fail(key: str, value, what: str):
  raise UserError(f"config.{key}={value!r}: expected {what}")


def check(config, prefix: str = "", data=None) -> None:
  """Raises a UserError for the first key whose value breaks its rule (or has no rule)."""
  task = config.get("task", "")
  rules = RULES.get(task)
  if rules is None:
    return   # an unknown task: tasks.resolve says so
  nested = NESTED.get(task, ())
  values = flatten(config)
  if data is not None:   # a comparison's run: the shared data block is checked with it
    values.update({f"data.{k}": v for k, v in flatten(data).items()})
  for key, value in values.items():
    if key.split(".")[0] in nested:
      continue
    rule = rules.get(key)
    if rule is None:
      raise UserError(f"config.{prefix}{key}: not a key of task '{task}' (no rule for it)")
    what = rule(value)
    if what:
      _fail(prefix + key, value, what)
  _cross_checks(task, values, prefix)
  if task == "dvgo_compare":
    for name, run in config.runs.items():
      check(run, f"{prefix}runs.{name}.", data=config.data)
  elif task == "transfer":
    for name in ("byol", "supervised", "classifier"):
      check(config[name], f"{prefix}{name}.")


def _cross_checks(task: str, v: dict, prefix: str) -> None:
  if v.get("data.far") is not None and v.get("data.near") is not None and (
      v["data.far"] <= v["data.near"]):
    _fail(prefix + "data.far", v["data.far"], f"a value above data.near={v['data.near']}")
  if "train.num_steps" in v and not (v["train.num_steps"] or v["train.num_epochs"]):
    _fail(prefix + "train.num_steps", 0, "> 0 when train.num_epochs is 0")
  if v.get("probe.l2") == ():
    _fail(prefix + "probe.l2", (), "a tuple of one or more penalties > 0")
  for key in ("augment.crop_scale", "augment.crop_ratio", "augment.blur_sigma"):
    if key in v and v[key][0] > v[key][1]:
      _fail(prefix + key, v[key], "(min, max) with min <= max")
