"""The viewer's render loop: one thread renders the views the browser tabs ask for, newest first.

The web server's event loop only records each tab's latest camera and settings (`request`,
`settings`) and wakes this thread, so a render never blocks it. One render runs at a time; a tab's
older cameras are dropped when a newer one arrives (the newest camera wins). While a tab's camera
moves it gets previews at 1 / `preview_scale` of its resolution; once the camera has been still for
`STILL_S` the same view is rendered at full resolution. Renders are cached per (model version, pose,
intrinsics, size), so a view seen before (or the same view in another output: RGB / depth /
opacity) is not rendered again. During training (`share` < 1) the thread rests after each render
so that rendering takes at most `share` of the wall time, which bounds the training's slowdown.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Callable

import numpy as np

from hw4_jax.core import files
from hw4_jax.nerf import view_camera
from hw4_jax.nerf.views import Renderer, depth_rgb

STILL_S = 0.3          # a camera unchanged this long is refined to full resolution
PREVIEW_CHUNK = 1024   # rays per compiled call for previews (full resolution: render.chunk)
CACHE_PIXELS = 16_000_000   # the cache keeps its newest renders up to this many pixels in all
OUTPUTS = ("rgb", "depth", "opacity")


@dataclasses.dataclass
class Frame:
  """What one tab is sent: the image (uint8 [H, W, 3]), its camera, how long the render took."""
  image: np.ndarray
  camera: object
  c2w: np.ndarray
  full: bool
  seconds: float
  cached: bool
  version: int


@dataclasses.dataclass
class _Tab:
  c2w: np.ndarray | None = None
  fov: float = 1.0
  aspect: float = 1.0
  moved_at: float = 0.0
  output: str = "rgb"
  long_side: int = 100
  shown: tuple | None = None      # the key of the last frame sent
  served_at: float = 0.0


class RenderLoop:
  """The render thread of one viewer; `send(tab_id, Frame)` delivers each finished frame."""

  def __init__(self, send: Callable[[int, Frame], None], preview_scale: int = 4,
               chunk: int = 8192, share: float = 1.0):
    self.send, self.preview_scale, self.chunk, self.share = send, int(preview_scale), chunk, share
    self._tabs: dict[int, _Tab] = {}
    self._cond = threading.Condition()
    self._cache: collections.OrderedDict = collections.OrderedDict()
    self._model = None   # (version, preview renderer, full renderer, near, far)
    self._version = 0
    self._stop = False
    self._thread = threading.Thread(target=self._run, name="viewer-render", daemon=True)
    self.errors: list[str] = []

  def start(self) -> "RenderLoop":
    self._thread.start()
    return self

  def stop(self) -> None:
    with self._cond:
      self._stop = True
      self._cond.notify_all()
    self._thread.join(timeout=60)

  def set_model(self, params, buffers, spec, near: float, far: float) -> int:
    """New grids (a trained model, or the training's current ones): every tab is rendered again.
    `spec`: the render spec with its starting budgets (`views.render_spec`); for grids of the
    shape already shown, the budgets the renders adapted to are kept (a budget change compiles the
    renderer again: seconds on a CPU)."""
    specs = [spec, spec]
    if self._model is not None:   # the same grid shape: keep the budgets the renders settled on
      specs = [r.spec if r.spec._replace(cap_points=spec.cap_points, cap_color=spec.cap_color) == spec
               else spec for r in self._model[1:3]]
    with self._cond:
      self._version += 1
      self._model = (self._version,
                     Renderer(params, buffers, specs[0], PREVIEW_CHUNK, fixed_chunk=True),
                     Renderer(params, buffers, specs[1], self.chunk, fixed_chunk=True), near, far)
      self._cache.clear()
      self._cond.notify_all()
      return self._version

  def request(self, tab_id: int, c2w, fov: float, aspect: float) -> None:
    """A tab's camera moved (called from the server's event loop: records and returns)."""
    with self._cond:
      tab = self._tabs.setdefault(tab_id, _Tab())
      tab.c2w, tab.fov, tab.aspect = np.asarray(c2w, np.float64), float(fov), float(aspect)
      tab.moved_at = time.monotonic()
      self._cond.notify_all()

  def settings(self, tab_id: int, output: str | None = None, long_side: int | None = None) -> None:
    with self._cond:
      tab = self._tabs.setdefault(tab_id, _Tab())
      tab.output = output or tab.output
      tab.long_side = int(long_side or tab.long_side)
      self._cond.notify_all()

  def forget(self, tab_id: int) -> None:
    with self._cond:
      self._tabs.pop(tab_id, None)

  def _job(self, now: float):
    """The next (tab id, key, camera, c2w, full) to render, or None; the caller holds the lock."""
    if self._model is None:
      return None
    best = None
    for tab_id, tab in self._tabs.items():
      if tab.c2w is None:
        continue
      full = now - tab.moved_at >= STILL_S
      side = tab.long_side if full else max(16, tab.long_side // self.preview_scale)
      h, w = view_camera.image_size(tab.aspect, side)
      cam = view_camera.camera_from_fov(tab.fov, h, w)
      key = (self._model[0], tab.c2w.round(6).tobytes(), h, w, round(tab.fov, 6), tab.output)
      if key == tab.shown:
        continue
      if best is None or tab.served_at < best[0].served_at:   # tabs take turns
        best = (tab, tab_id, key, cam, tab.c2w.copy(), full)
    return best

  def _wait_s(self, now: float) -> float:
    """How long until a moving tab becomes still (its full-resolution render is due)."""
    due = [STILL_S - (now - t.moved_at) for t in self._tabs.values() if t.c2w is not None]
    due = [d for d in due if d > 0]
    return min(due + [0.5]) + 0.01

  def _run(self) -> None:
    while True:
      with self._cond:
        job = None
        while not self._stop:
          job = self._job(time.monotonic())
          if job is not None:
            break
          self._cond.wait(self._wait_s(time.monotonic()))
        if self._stop:
          return
        tab, tab_id, key, cam, c2w, full = job
        output = tab.output
        version, preview, renderer, near, far = self._model
      try:
        rgb, depth, acc, seconds, cached = self._render(version, preview, renderer, cam, c2w, full)
      except Exception as err:   # logged; the server goes on (a view that fails is not retried)
        self.errors.append(f"{type(err).__name__}: {err}")
        print(f"[view] render failed: {self.errors[-1]}", flush=True)
        with self._cond:
          tab.shown = key
        continue
      image = {"rgb": lambda: rgb, "depth": lambda: depth_rgb(depth, acc, near, far),
               "opacity": lambda: np.repeat(acc[..., None], 3, -1)}[output]()
      with self._cond:
        tab.shown, tab.served_at = key, time.monotonic()
        alive = tab_id in self._tabs
      if alive:
        self.send(tab_id, Frame(files.to_uint8(image), cam, c2w, full, seconds, cached, version))
      if self.share < 1.0 and not cached:   # during training: rest so renders take <= share
        time.sleep(seconds * (1.0 / self.share - 1.0))

  def _render(self, version, preview, renderer, cam, c2w, full):
    key = (version, np.asarray(c2w).round(6).tobytes(), cam)
    if key in self._cache:
      self._cache.move_to_end(key)
      return (*self._cache[key], True)
    t0 = time.perf_counter()
    rgb, depth, acc = (renderer if full else preview).image(cam, c2w)
    seconds = time.perf_counter() - t0
    self._cache[key] = (rgb, depth, acc, seconds)
    while sum(v[0].shape[0] * v[0].shape[1] for v in self._cache.values()) > CACHE_PIXELS:
      self._cache.popitem(last=False)
    return rgb, depth, acc, seconds, False
