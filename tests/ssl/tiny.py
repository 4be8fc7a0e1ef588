"""Tiny configs for the ssl tests: demo data, a width-8 ResNet-18 at 64 px, a handful of steps."""

from tests import helpers


def load_config(name: str, preset: str = "demo"):
  return helpers.load_config(name, preset)


def shrink(c, steps: int = 4, batch: int = 8, size: int = 64, demo_dir: str = ""):
  """Make a demo config tiny (in place) and return it."""
  c.model.width = 8
  c.augment.crop_size = size
  c.data.image_size = size
  c.data.demo_dir = demo_dir
  c.train.batch_size = batch
  c.train.num_steps = steps
  c.log_every = 1
  c.checkpoint_every = 2
  if "byol" in c:
    c.byol.hidden_dim = 32
    c.byol.proj_dim = 16
  if "knn" in c:
    c.knn.image_size = size
    c.knn.demo_dir = demo_dir
    c.knn.batch_size = 32
  if "head" in c:
    c.head.hidden = 16
    c.train.eval_every = 2
    c.train.eval_batch_size = 32
  return c
