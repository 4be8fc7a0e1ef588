"""The viewer's render loop without a browser: the newest camera wins, previews then full
resolution, the per-pose cache, tabs that leave, and the event loop never waits for a render
(view_renders.py). The renderer is a stand-in that takes RENDER_S per image and records its calls."""

import collections
import queue
import time

import numpy as np
import pytest

from hw4_jax.nerf import view_renders

RENDER_S = 0.2
SPEC = collections.namedtuple("Spec", "cap_points cap_color")(8.0, 8.0)


class SlowRenderer:
  calls: list = []

  def __init__(self, params, buffers, spec, chunk, fixed_chunk=False):
    self.spec = spec

  def image(self, cam, c2w):
    SlowRenderer.calls.append((cam.height, cam.width, float(c2w[0, 3])))
    time.sleep(RENDER_S)
    shade = np.full((cam.height, cam.width), float(c2w[0, 3]) / 10, np.float32)
    return np.stack([shade] * 3, -1), shade, shade


@pytest.fixture
def loop(monkeypatch):
  monkeypatch.setattr(view_renders, "Renderer", SlowRenderer)
  monkeypatch.setattr(view_renders, "STILL_S", 0.3)
  SlowRenderer.calls = []
  frames: queue.Queue = queue.Queue()
  loop = view_renders.RenderLoop(lambda tab, frame: frames.put((tab, frame)), preview_scale=4)
  loop.set_model({}, {}, SPEC, near=2.0, far=6.0)
  loop.frames = frames
  yield loop.start()
  loop.stop()


def pose(x):
  c2w = np.eye(4)
  c2w[0, 3] = x
  return c2w


def next_frame(loop, timeout=10.0):
  return loop.frames.get(timeout=timeout)


def test_newest_camera_wins_then_full_resolution(loop):
  loop.settings(1, output="rgb", long_side=64)
  loop.request(1, pose(1.0), 1.0, 1.0)        # starts rendering at once (a preview)
  time.sleep(0.05)
  t0 = time.monotonic()
  for x in (2.0, 3.0, 4.0):                   # arrive during that render: only the last counts
    loop.request(1, pose(x), 1.0, 1.0)
  assert time.monotonic() - t0 < 0.05         # request() returns at once, even during a render
  frames = []
  while not (frames and frames[-1].full):
    frames.append(next_frame(loop)[1])
  assert not frames[0].full and frames[0].image.shape == (16, 16, 3)
  assert frames[-1].image.shape == (64, 64, 3) and float(frames[-1].c2w[0, 3]) == 4.0
  assert {x for _, _, x in SlowRenderer.calls} == {1.0, 4.0}   # 2 and 3 were never rendered
  time.sleep(0.5)
  assert loop.frames.empty()                  # a still camera is not rendered again


def test_cache_and_outputs(loop):
  loop.settings(1, output="rgb", long_side=32)
  loop.request(1, pose(5.0), 1.0, 2.0)
  frames = [next_frame(loop)[1] for _ in range(2)]
  assert [f.full for f in frames] == [False, True]
  assert frames[1].image.shape == (16, 32, 3)   # aspect 2: 32 wide, 16 high
  n = len(SlowRenderer.calls)
  loop.settings(1, output="opacity")             # another output of the same view: from the cache
  _, frame = next_frame(loop)
  assert frame.cached and frame.full and len(SlowRenderer.calls) == n
  assert frame.image[0, 0, 0] == round(255 * 0.5)
  loop.set_model({}, {}, SPEC, near=2.0, far=6.0)   # new grids: rendered again
  _, frame = next_frame(loop)
  assert not frame.cached and len(SlowRenderer.calls) == n + 1


def test_tabs_take_turns_and_a_closed_tab_is_dropped(loop):
  for tab in (1, 2, 3):
    loop.settings(tab, output="rgb", long_side=32)
    loop.request(tab, pose(float(tab)), 1.0, 1.0)
  loop.forget(3)
  got = {next_frame(loop)[0] for _ in range(4)}
  assert got == {1, 2}
  time.sleep(2 * RENDER_S)
  assert all(x != 3.0 for _, _, x in SlowRenderer.calls)
