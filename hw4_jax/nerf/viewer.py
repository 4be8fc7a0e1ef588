"""The browser viewer of a DVGO scene (`mode=view`, and `view.during_train=True` while training).

Built on viser (the optional `viewer` extra): it serves its own web client (works offline), gives
every tab orbit / pan / zoom camera controls and reports each tab's camera to the server. The server
renders the tab's view with the project's renderer (`view_renders.RenderLoop`, off the event loop)
and sends it as the scene's background image (PNG, lossless); the training cameras (frustums: click
one to jump to it) and the scene's bounding box are drawn over it. Each tab has its own panel: the
output (RGB / depth colour-mapped / accumulated opacity), the resolution (longer side, pixels), the
last frame's size and render time, and its camera as a transforms-JSON frame (`mode=render` with
that frame renders the same image).
"""

from __future__ import annotations

import functools
import json
import signal
import time

import numpy as np

from hw4_jax.core import interrupt
from hw4_jax.core.errors import UserError
from hw4_jax.nerf import dvgo, scene, view_camera
from hw4_jax.nerf import raymarch as R
from hw4_jax.nerf.cameras import look_point
from hw4_jax.nerf.view_renders import OUTPUTS, Frame, RenderLoop
from hw4_jax.nerf.views import render_spec, trained_camera

EXTRA = "pip install -e '.[viewer]'"


def require_viser():
  """viser, or one error line that names the extra to install."""
  try:
    import viser
  except ImportError:
    raise UserError(f"the browser viewer (config.mode=view, config.view.during_train) needs the "
                    f"optional 'viewer' extra (viser): {EXTRA}") from None
  return viser


class Viewer:
  """One viser server: the overlays, a panel per tab, and the render loop that feeds the tabs."""

  def __init__(self, config, *, up, near: float, far: float, train=None, long_side: int = 100,
               share: float = 1.0):
    viser = require_viser()
    vc = config.view
    self.near, self.far, self.long_side = float(near), float(far), int(vc.resolution or long_side)
    self.status_line = ""   # e.g. the training step, shown in every tab
    self.server = viser.ViserServer(host=vc.host, port=int(vc.port), verbose=False)
    self.server.scene.set_up_direction(tuple(float(x) for x in up))
    self.loop = RenderLoop(self._send, int(vc.preview_scale), int(config.render.chunk), share)
    self._panels: dict[int, dict] = {}
    if train is not None and len(train):
      self._add_frustums(train, look_point(train.poses))
    self.server.on_client_connect(self._connect)
    self.server.on_client_disconnect(lambda client: self._disconnect(client.client_id))
    self.loop.start()

  @property
  def url(self) -> str:
    host = self.server.get_host()
    return f"http://{'localhost' if host in ('0.0.0.0', '::', '') else host}:{self.server.get_port()}"

  def _add_frustums(self, train, center) -> None:
    """The training cameras (click one: the tab's camera jumps to it); every tab starts at the
    first."""
    radius = float(np.linalg.norm(train.poses[:, :3, 3] - center, axis=-1).mean())
    for i, c2w in enumerate(train.poses):
      cam = train.camera(i)
      wxyz, pos = view_camera.viser_from_c2w(c2w)
      handle = self.server.scene.add_camera_frustum(
          f"/train/{i:04d}", fov=view_camera.fov_of(cam), aspect=cam.width / cam.height,
          scale=0.08 * radius, thickness=1.5, thickness_units="screen", color=(40, 90, 220),
          wxyz=wxyz, position=pos)
      handle.on_click(functools.partial(self._jump, np.asarray(c2w, np.float64), cam, center))
    c2w, cam = np.asarray(train.poses[0], np.float64), train.camera(0)
    initial = self.server.initial_camera
    initial.position = tuple(c2w[:3, 3])
    initial.look_at = tuple(c2w[:3, 3] - c2w[:3, 2] * np.linalg.norm(c2w[:3, 3] - center))
    initial.fov = view_camera.fov_of(cam)

  @staticmethod
  def _jump(c2w, cam, center, event) -> None:
    """A click on a training camera's frustum: that tab's camera moves to it."""
    wxyz, pos = view_camera.viser_from_c2w(c2w)
    camera = event.client.camera
    with event.client.atomic():
      camera.fov = view_camera.fov_of(cam)
      camera.position = pos
      camera.look_at = pos - c2w[:3, 2] * max(float(np.linalg.norm(pos - center)), 1e-3)
      camera.wxyz = wxyz

  def _connect(self, client) -> None:
    tab = client.client_id
    gui = client.gui
    output = gui.add_dropdown("output", OUTPUTS, initial_value="rgb")
    resolution = gui.add_slider("resolution", min=16, max=max(1024, self.long_side), step=8,
                                initial_value=self.long_side,
                                hint="longer side of the full-resolution image, pixels")
    status = gui.add_markdown("waiting for the first frame")
    camera = gui.add_text("camera", initial_value="", disabled=True,
                          hint="this view as a transforms-JSON frame (mode=render renders it)")
    self._panels[tab] = {"status": status, "camera": camera}
    output.on_update(lambda _: self.loop.settings(tab, output=output.value))
    resolution.on_update(lambda _: self.loop.settings(tab, long_side=int(resolution.value)))
    self.loop.settings(tab, output="rgb", long_side=self.long_side)

    @client.camera.on_update
    async def _(cam) -> None:   # in the event loop: only records the camera
      self.loop.request(tab, view_camera.c2w_from_viser(cam.wxyz, cam.position), cam.fov, cam.aspect)

    cam = client.camera
    self.loop.request(tab, view_camera.c2w_from_viser(cam.wxyz, cam.position), cam.fov, cam.aspect)

  def _disconnect(self, tab: int) -> None:
    self.loop.forget(tab)
    self._panels.pop(tab, None)

  def _send(self, tab: int, frame: Frame) -> None:
    """Called by the render thread: the frame's image and its panel texts to one tab."""
    client, panel = self.server.get_clients().get(tab), self._panels.get(tab)
    if client is None or panel is None:
      return
    cam = frame.camera
    what = "full" if frame.full else "preview"
    took = "cached" if frame.cached else f"{frame.seconds * 1000:.0f} ms"
    line = f"**{cam.width}x{cam.height}** {what} | render {took}"
    with client.atomic():
      panel["status"].content = line + (f" | {self.status_line}" if self.status_line else "")
      panel["camera"].value = json.dumps(view_camera.transforms_frame(cam, frame.c2w))
      client.scene.set_background_image(frame.image, format="png")

  def set_model(self, params, buffers, spec: R.RenderSpec, status: str = "") -> None:
    """Shows these grids (and their bounding box) in every tab (`spec` with the budgets rendering
    starts from)."""
    self.status_line = status
    lo, hi = (np.asarray(buffers[k], np.float64) for k in ("xyz_min", "xyz_max"))
    self.server.scene.add_box("/bbox", color=(255, 140, 0), dimensions=tuple(hi - lo),
                              wireframe=True, position=tuple((lo + hi) / 2))
    self.loop.set_model(params, buffers, spec, self.near, self.far)

  def close(self) -> None:
    self.loop.stop()
    self.server.stop()


class TrainingView:
  """`view.during_train`: a Viewer fed the training's current grids every `view.update_every` steps
  while a tab is open (`StageRunner(on_grids=...)`). The training thread only copies the grids (the
  next step donates their buffers) and hands them over; the render thread rests so that it renders
  at most `view.render_share` of the time."""

  def __init__(self, config, sc, train):
    up = train.poses[:, :3, 1].mean(0)
    cam = train.camera(0)
    self.every = int(config.view.update_every)
    self.viewer = Viewer(config, up=up / np.linalg.norm(up), near=sc.near, far=sc.far, train=train,
                         long_side=max(cam.height, cam.width),
                         share=float(config.view.render_share))
    self.updates, self.seconds = 0, 0.0
    print(f"[view] open {self.viewer.url} in a browser: the grids as they train (every "
          f"{self.every} steps)", flush=True)

  def __call__(self, stage: str, step: int, total: int, state, spec, force: bool = False) -> None:
    if (step % self.every and not force) or not self.viewer.server.get_clients():
      return   # (no tab open: nothing to copy; a tab that opens gets the next update)
    import jax
    import jax.numpy as jnp
    t0 = time.perf_counter()
    buffers = {k: state.model_state[k] for k in ("xyz_min", "xyz_max", "act_shift", "mask")}
    params, buffers = jax.tree.map(jnp.copy, (state.params, buffers))
    self.viewer.set_model(params, buffers, render_spec(spec), f"{stage} step {step}/{total}")
    self.updates, self.seconds = self.updates + 1, self.seconds + time.perf_counter() - t0

  def close(self) -> None:
    self.viewer.close()
    print(f"[view] training viewer closed ({self.updates} grid updates, "
          f"{1000 * self.seconds / max(self.updates, 1):.1f} ms each on the training thread)",
          flush=True)


def model_overlays(meta: dict) -> dict:
  """The Viewer's scene arguments from a trained model: up axis, near / far, image size."""
  cam, _ = trained_camera(meta)
  return {"up": (meta.get("orbit") or {}).get("up", (0.0, 0.0, 1.0)),
          "near": meta["near"], "far": meta["far"], "long_side": max(cam.height, cam.width)}


def training_cameras(config, meta: dict):
  """The training split's cameras (no images), or None when the scene is not readable here."""
  try:
    sc = scene.configured(config.data, config.data.scene_dir or meta["scene_dir"])
    return sc.load("train", int(meta.get("downscale", 1)), bool(meta.get("white_bkgd", True)),
                   with_images=False, size=trained_camera(meta)[1])
  except UserError as err:
    print(f"[view] no training cameras shown: {err}", flush=True)
    return None


def serve_until_stopped(viewer: Viewer) -> None:
  """Serves until SIGTERM / SIGINT, then closes the server (the port is free when this returns)."""
  print(f"[view] open {viewer.url} in a browser (Ctrl-C or SIGTERM stops the server)", flush=True)
  try:
    while interrupt.pending() is None:
      time.sleep(0.2)
  finally:
    viewer.close()


def view_mode(config, workdir):
  """MODES['view']: serves the trained model in `workdir` until SIGTERM / Ctrl-C, then exits 0."""
  require_viser()
  meta = dvgo.load_meta(workdir)
  params, buffers, meta = dvgo.load_model(workdir)
  viewer = Viewer(config, train=training_cameras(config, meta), **model_overlays(meta))
  viewer.set_model(params, buffers, render_spec(R.RenderSpec(**meta["spec"]), meta.get("caps")),
                   f"model {workdir}")
  serve_until_stopped(viewer)
  signum = interrupt.pending()
  interrupt.reset()   # the signal is how a viewer ends: a normal exit (status 0)
  print(f"[view] stopped by {signal.Signals(signum).name}; the server is closed",
        flush=True)
