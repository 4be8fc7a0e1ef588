"""Benchmark: images/s of the BYOL train step, ResNet-50 at 128 px, vs byol-pytorch, in one run.

JAX side: our jitted step (on-device per-example augmentation, online + EMA target, Adam), batch 32 on
CPU (512 on a GPU), computing in `model.dtype='auto'` (float32 on CPU, bfloat16 on GPU/TPU) unless
--dtype says otherwise. Torch side: byol-pytorch 0.8.2 (the version without simplicial embeddings,
whose projector is the reference's) `BYOL(resnet50, image_size=128)` with the same projector /
predictor sizes, Adam, `update_moving_average()` every step, in the same precision: under
`torch.autocast(bfloat16)` when JAX computes in bf16 (its own batch-level augmentation included, as
the reference ran it). It runs in a separate interpreter (`--torch_python`, default
$BYOL_TORCH_PYTHON or /work/torchvenv/bin/python) so torch is never a dependency of this project;
make one with `python3 -m venv V && V/bin/pip install torch==2.14.1 torchvision==0.29.1
byol-pytorch==0.8.2`. Prints one line, naming the device each side ran on:
  byol_step resnet50@128 batch=32 float32 jax=<img/s> torch=<img/s> ratio=<jax/torch> device=cpu2
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

_BATCH = flags.DEFINE_integer("batch", 0, "Batch size (0: 32 on CPU, 512 on GPU).")
_SIZE = flags.DEFINE_integer("size", 128, "Image resolution.")
_STEPS = flags.DEFINE_integer("steps", 4, "Timed steps (after 2 warm-up steps).")
_DTYPE = flags.DEFINE_string("dtype", "auto", "Compute dtype of both sides: auto (float32 on CPU, "
                             "bfloat16 on GPU/TPU), float32 or bfloat16.")
_TORCH = flags.DEFINE_string("torch_python", os.environ.get("BYOL_TORCH_PYTHON",
                                                            "/work/torchvenv/bin/python"),
                             "Python with torch + torchvision + byol-pytorch ('' to skip).")
_THREADS = flags.DEFINE_integer("threads", 0, "Torch intra-op threads (0: all cores).")

BYOL_PYTORCH = "0.8.2"
TORCH_SCRIPT = r"""
import contextlib, json, platform, sys, time, torch, torchvision
from importlib.metadata import version
from byol_pytorch import BYOL
batch, size, steps, threads = (int(a) for a in sys.argv[1:5])
dtype = sys.argv[5]
if threads: torch.set_num_threads(threads)
dev = "cuda" if torch.cuda.is_available() else "cpu"
kind = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
amp = (torch.autocast(device_type=dev, dtype=torch.bfloat16) if dtype == "bfloat16"
       else contextlib.nullcontext())
torch.manual_seed(0)
net = torchvision.models.resnet50().to(dev)
learner = BYOL(net, image_size=size, hidden_layer="avgpool", projection_size=256,
               projection_hidden_size=4096, moving_average_decay=0.99).to(dev)
opt = torch.optim.Adam(learner.parameters(), lr=1e-4)
images = torch.rand(batch, 3, size, size, device=dev)
def step():
    with amp:
        loss = learner(images)
    opt.zero_grad(); loss.backward(); opt.step(); learner.update_moving_average()
    return loss
for _ in range(2): step()
if dev == "cuda": torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(steps): loss = step()
float(loss)
if dev == "cuda": torch.cuda.synchronize()
dt = time.perf_counter() - t
print(json.dumps({"images_per_s": batch * steps / dt, "device": dev, "kind": kind,
                  "torch": torch.__version__, "byol_pytorch": version("byol-pytorch"),
                  "threads": torch.get_num_threads()}))
"""


def jax_images_per_s(batch: int, size: int, steps: int, dtype: str) -> float:
  import jax
  import numpy as np
  from hw4_jax.core import mesh as mesh_lib
  from hw4_jax.ssl import byol
  from load_config import load_config   # bench/load_config.py
  c = load_config("byol", "default")    # the reference report's BYOL: ResNet-50, Adam 1e-4
  c.model.dtype = dtype
  c.augment.crop_size = size
  c.train.batch_size = batch
  mesh = mesh_lib.make_mesh()
  net, state, lr = byol.build(c, 10_000, jax.random.PRNGKey(0))
  state = mesh_lib.replicate(state, mesh)
  step = mesh_lib.jit_step(byol.step_fn(net, c.augment, lr), mesh)
  rng = np.random.default_rng(0)
  batch_np = {"image": rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8),
              "label": np.zeros(batch, np.int32)}
  data = mesh_lib.shard_batch(batch_np, mesh)
  t = time.perf_counter()
  for _ in range(2):
    state, metrics = step(state, data)
  jax.block_until_ready(metrics)
  print(f"[byol_step] jax compile + 2 warm-up steps: {time.perf_counter() - t:.1f}s", flush=True)
  t = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, data)
  jax.block_until_ready(metrics)
  return batch * steps / (time.perf_counter() - t)


def device_kind() -> tuple[str, str]:
  """(short, long) name of what JAX runs on: the accelerator's kind, or the CPU's cores and model."""
  import jax
  device = jax.devices()[0]
  if device.platform != "cpu":
    name = f"{jax.device_count()}x{device.device_kind}"
    return name.replace(" ", "_"), name
  model = ""
  if os.path.isfile("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
  return f"cpu{os.cpu_count()}", f"cpu ({os.cpu_count()} cores{', ' + model if model else ''})"


def main(argv):
  del argv
  import jax
  from hw4_jax.ssl import resnet
  gpu = jax.default_backend() == "gpu"
  batch = _BATCH.value or (512 if gpu else 32)
  dtype = resnet.compute_dtype(_DTYPE.value)
  short, kind = device_kind()
  jax_ips = jax_images_per_s(batch, _SIZE.value, _STEPS.value, dtype)
  print(f"[byol_step] jax ({kind}, {dtype}): {jax_ips:.2f} images/s", flush=True)
  torch_ips = None
  if _TORCH.value and os.path.exists(_TORCH.value):
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
      f.write(TORCH_SCRIPT)
    proc = subprocess.run([_TORCH.value, f.name, str(batch), str(_SIZE.value), str(_STEPS.value),
                           str(_THREADS.value), dtype], capture_output=True, text=True)
    os.unlink(f.name)
    if proc.returncode == 0:
      info = json.loads(proc.stdout.strip().splitlines()[-1])
      torch_ips = info["images_per_s"]
      print(f"[byol_step] byol-pytorch {info['byol_pytorch']} (torch {info['torch']}, "
            f"{info['kind']}, {info['threads']} threads, {dtype}): {torch_ips:.2f} images/s",
            flush=True)
      if info["byol_pytorch"] != BYOL_PYTORCH:
        print(f"[byol_step] warning: byol-pytorch {info['byol_pytorch']}, not the pinned "
              f"{BYOL_PYTORCH} (0.9 adds simplicial embeddings to the projector)", flush=True)
    else:
      print(f"[byol_step] byol-pytorch run failed:\n{proc.stderr[-2000:]}", flush=True)
  else:
    print(f"[byol_step] byol-pytorch skipped: no interpreter at {_TORCH.value!r} (make one with "
          "`python3 -m venv V && V/bin/pip install torch==2.14.1 torchvision==0.29.1 "
          f"byol-pytorch=={BYOL_PYTORCH}`, then pass --torch_python=V/bin/python)", flush=True)
  ratio = f"{jax_ips / torch_ips:.2f}" if torch_ips else "n/a"
  torch_s = f"{torch_ips:.2f}" if torch_ips else "n/a"
  print(f"byol_step resnet50@{_SIZE.value} batch={batch} {dtype} jax={jax_ips:.2f} "
        f"torch={torch_s} ratio={ratio} device={short}")


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  app.run(main)
