"""BYOL self-supervised pre-training (`task=byol`). Presets: default (the seed), cpu, demo, lars."""

from hw4_jax.core import presets
from hw4_jax.ssl import config_parts as parts
import ml_collections


def default():
  c = ml_collections.ConfigDict()
  c.task, c.mode, c.seed = "byol", "train", 0
  c.data = parts.mini(image_size=128)
  c.model = parts.model("resnet50")
  # predictor_lr_mult: the predictor's step size relative to the rest (1 = the seed's single Adam).
  c.byol = ml_collections.ConfigDict(dict(hidden_dim=4096, proj_dim=256, tau_base=0.99,
                                          predictor_lr_mult=1.0))
  c.augment = parts.augment(crop_size=128)
  c.optim = parts.optim("adam", lr=1e-4, warmup_steps=1000)
  c.train = parts.train(batch_size=512, num_epochs=1000, checkpoint_every=1000)
  c.knn = parts.knn(parts.flowers(image_size=128), every=5000)
  return c


def lars():
  """The paper's optimizer instead of the seed's Adam."""
  c = default()
  c.optim = parts.lars()
  return c


def cpu():
  """Finishes on a 2-core CPU: ResNet-18 width 16 at 96 px (the XLA CPU 2x2-conv trap), batch 64."""
  c = default()
  c.data = parts.mini(image_size=96)
  # Width 16 (a quarter of the channels): ~4x the steps of width 64 in the same minutes, and at width 64
  # the ~350 steps that fit left BYOL below a random init on kNN (the random baseline is the same
  # narrow net). The projector/predictor hidden layer shrinks with it (4096 would dominate the step).
  c.model = parts.model("resnet18", width=16)
  c.byol.hidden_dim = 512
  c.augment = parts.augment(crop_size=96)
  # A few epochs only: skip the tiniest crops (as CIFAR recipes do), and no colour invariance: a short
  # run with the seed's colour jitter/greyscale throws away the colour cues that a flowers-like target
  # needs (kNN on flowers fell from 48% at init to 35% after 200 steps; Xiao et al. 2021 report the
  # same for Flowers-102) before it has learned anything better.
  c.augment.crop_scale = (0.2, 1.0)
  c.augment.p_jitter = 0.0
  c.augment.p_gray = 0.0
  # With one step size for everything the backbone collapsed to ~4 feature dimensions within 100
  # steps (effective rank of flowers features 32 -> 4) and in-domain kNN on mini stayed at the level
  # of a random net with calibrated BatchNorm statistics (~5; 8.2 with the init's identity BN). A 10x
  # faster predictor (BYOL paper sec. 5, DirectPred) keeps ~8-10 dimensions, and then a higher lr
  # helps: mini kNN (100 classes) after 600 steps 4.7 (lr 2e-4, x1) -> 9.0 (lr 5e-4, x10).
  c.byol.predictor_lr_mult = 10.0
  c.optim = parts.optim("adam", lr=5e-4, warmup_steps=50)
  c.train = parts.train(batch_size=64, num_epochs=20, log_every=10, checkpoint_every=200)
  c.knn = parts.knn(parts.flowers(image_size=96), every=500, batch_size=128)
  c.data.num_threads = c.knn.num_threads = 2
  return c


def demo():
  """Minutes anywhere: the generated shapes set, a narrow ResNet-18 at 96 px."""
  c = default()
  c.data = parts.demo(image_size=96)
  c.model = parts.model("resnet18", width=16)
  c.byol.hidden_dim = 256
  c.augment = parts.augment(crop_size=96)
  c.optim = parts.optim("adam", lr=1e-3, warmup_steps=10)
  c.train = parts.train(batch_size=32, num_epochs=3, log_every=5, checkpoint_every=20)
  c.knn = parts.knn(parts.demo(image_size=96), every=0, batch_size=64)
  c.data.num_threads = c.knn.num_threads = 2
  return c


def get_config(arg=None):
  return presets.choose(arg, {"default": default, "cpu": cpu, "demo": demo, "lars": lars})
