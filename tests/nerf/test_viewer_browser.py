"""The browser viewer end to end in headless Chromium (Playwright): `mode=view` on a tiny demo
workdir trained here with `view.during_train` and a tab open (the tab shows the grids as they
train). Then `mode=view`: (a) the image the page received (the PNG bytes of the background image
the page decoded, read back from the page: no screenshot, no overlays) equals `mode=render` of the
camera the page shows; (b) dragging in the page moves the camera and the server renders a new image
(previews first, then full resolution); the resolution slider and the output switch (depth, from
the cache) work; a click on a training camera's frustum jumps there; two tabs at once, one closed;
(c) SIGTERM: exit 0 and the port is free.

Skips (never fails) where Chromium, Playwright or viser is missing. Chromium: Debian's `chromium`
(`.ci/run` installs it), or the path in HW4_CHROMIUM. With HW4_VIEWER_SCREENSHOT=PATH the test also
saves a screenshot of the page there, and HW4_VIEWER_WORKDIR=DIR uses that trained demo workdir
instead of training one (docs/images/viewer.png was taken so).
"""

import base64
import io
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT, run_main, subprocess_env
from tests.nerf.test_train import TINY

pytest.importorskip("viser", reason="the browser viewer's extra (pip install -e '.[viewer]')")
pytest.importorskip("playwright", reason="playwright is not installed (pip install -e '.[test]')")
CHROMIUM = os.environ.get("HW4_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not CHROMIUM, reason="no Chromium found (apt-get install chromium, or set HW4_CHROMIUM)")]

# Keeps every image Blob the page makes an object URL of (viser's client loads the background image
# through one): the exact bytes the browser received.
RECORD_IMAGES = """
window.__images = [];
const createObjectURL = URL.createObjectURL.bind(URL);
URL.createObjectURL = (obj) => {
  if (obj instanceof Blob && obj.type.startsWith('image/')) window.__images.push(obj);
  return createObjectURL(obj);
};
"""
READ_IMAGE = """async (i) => {
  const bytes = new Uint8Array(await window.__images.at(i).arrayBuffer());
  let s = ''; for (const b of bytes) s += String.fromCharCode(b); return btoa(s);
}"""
CAMERA_TEXT = """() => (Array.from(document.querySelectorAll('input'))
                     .find(e => e.value.startsWith('{"w"')) || {value: ''}).value"""


def _psnr(a, b) -> float:
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _image(page, i=-1) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(base64.b64decode(page.evaluate(READ_IMAGE, i)))))


def _settled(page, timeout=240.0, after: int = 0):
  """Waits until the page has shown a full-resolution frame (after its first `after` images) and no
  image came for 1.5 s; -> (its image, its camera frame, the number of images so far)."""
  end, last = time.time() + timeout, (-1, 0.0)
  while time.time() < end:
    n = page.evaluate("window.__images.length")
    status = page.inner_text("body")
    if n != last[0]:
      last = (n, time.time())
    elif n > after and " full " in status and time.time() - last[1] > 1.5:
      frame, image = json.loads(page.evaluate(CAMERA_TEXT)), _image(page)
      if page.evaluate("window.__images.length") == n:
        return image, frame, n
    time.sleep(0.2)
  raise AssertionError(f"no settled full-resolution frame in {timeout} s; page says: "
                       f"{page.inner_text('body')[-300:]}")


def _start(*args, timeout=120):
  """Starts `hw4_jax.main ARGS` and waits for its viewer's URL; -> (process, url, lines queue)."""
  proc = subprocess.Popen([sys.executable, "-m", "hw4_jax.main", *TINY, *args, "--config.view.port=0"],
                          cwd=ROOT, env=subprocess_env(1), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  lines: queue.Queue = queue.Queue()
  proc.reader = threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout], daemon=True)
  proc.reader.start()
  end, seen = time.time() + timeout, []
  while time.time() < end:
    try:
      line = lines.get(timeout=1)
    except queue.Empty:
      assert proc.poll() is None, "".join(seen)
      continue
    seen.append(line)
    if line.startswith("[view] open "):
      return proc, line.split()[2], lines
  proc.kill()
  raise AssertionError("no viewer URL printed:\n" + "".join(seen))


def _train_with_a_tab(context, workdir) -> None:
  """mode=train with view.during_train: a tab sees the grids as they train (its status line names
  the stage and step of the grids shown)."""
  proc, url, lines = _start(f"--workdir={workdir}", "--config.eval.lpips=False",
                            "--config.view.during_train=True", "--config.view.update_every=10",
                            "--config.view.render_share=1.0")
  page = context.new_page()
  page.goto(url)
  seen = set()
  while proc.poll() is None:
    text = page.inner_text("body")
    seen.update(word for word in ("coarse step", "fine step") if word in text)
    time.sleep(0.3)
  proc.reader.join(timeout=10)
  out = "".join(lines.queue)
  assert proc.returncode == 0, out[-3000:]
  assert seen, "the tab never showed the training's grids"
  assert "[view] training viewer closed" in out
  page.close()


def test_viewer_in_chromium(tmp_path):
  from playwright.sync_api import sync_playwright
  with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"])
    context = browser.new_context(viewport={"width": 640, "height": 480})
    context.add_init_script(RECORD_IMAGES)
    trained = os.environ.get("HW4_VIEWER_WORKDIR")   # a trained demo workdir (for the screenshot)
    if not trained:
      trained = tmp_path / "run"
      _train_with_a_tab(context, trained)
    proc, url, lines = _start(f"--workdir={trained}", "--config.mode=view")
    port = int(url.rsplit(":", 1)[1])
    try:
      _look_around(context, trained, url, tmp_path)
    finally:
      browser.close()
      proc.send_signal(signal.SIGTERM)
      try:
        status = proc.wait(timeout=60)
      except subprocess.TimeoutExpired:
        proc.kill()
        raise
  # (c) SIGTERM: exit 0, the port released
  proc.reader.join(timeout=10)   # (the rest of its output)
  out = "".join(lines.queue)
  assert status == 0, out[-2000:]
  assert "[view] stopped by SIGTERM" in out
  with socket.socket() as s:
    assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still accepts connections"


def _look_around(context, trained, url, tmp_path):
  """Two tabs on mode=view; checks (a) and (b) of the module docstring."""
  page, other = context.new_page(), context.new_page()
  page.goto(url)
  other.goto(url)
  # (a) the first settled image equals mode=render of the camera the page shows
  image, frame, n = _settled(page)
  _settled(other)
  other.close()                        # a tab that closes does not stop the server
  assert image.shape == (frame["h"], frame["w"], 3) and max(frame["w"], frame["h"]) == 100
  js = tmp_path / "view.json"
  js.write_text(json.dumps({"frames": [dict(frame, file_path="view")]}))
  out = tmp_path / "render"
  done = run_main(*TINY, f"--workdir={trained}", "--config.mode=render",
                  f"--config.render.transforms={js}", f"--config.render.output_dir={out}",
                  timeout=300)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
  rendered = np.asarray(Image.open(out / "view.png"))
  assert rendered.shape == image.shape
  psnr = _psnr(image, rendered)
  print(f"browser image vs mode=render: {image.shape[1]}x{image.shape[0]}, PSNR {psnr:.2f} dB")
  assert psnr >= 30.0
  # the view has enough structure for this to mean something: upside down it would fail
  assert _psnr(image, rendered[::-1]) < 30.0
  # (b) a drag in the page orbits the camera: previews while it moves, then a new full image
  page.mouse.move(200, 320)
  page.mouse.down()
  page.mouse.move(330, 300, steps=25)
  page.mouse.up()
  moved, moved_frame, m = _settled(page, after=n)
  assert moved_frame["transform_matrix"] != frame["transform_matrix"]
  assert moved.shape == image.shape
  assert np.abs(moved.astype(float) - image.astype(float)).mean() > 2.0
  sizes = {_image(page, i).shape[:2] for i in range(n, m)}
  assert any(max(s) < 100 for s in sizes), f"no preview frame while moving: {sizes}"
  if os.environ.get("HW4_VIEWER_SCREENSHOT"):
    page.screenshot(path=os.environ["HW4_VIEWER_SCREENSHOT"])
  # the panel: the resolution slider's number box, then the output switch (served from the cache)
  box = page.locator('xpath=//label[text()="resolution"]/following::input[@type="text"][1]')
  box.fill("48")
  box.press("Enter")
  small, small_frame, k = _settled(page, after=m)
  assert small.shape == (36, 48, 3) and (small_frame["w"], small_frame["h"]) == (48, 36)
  page.locator('xpath=//label[text()="output"]/following::input[1]').click()
  page.get_by_role("option", name="depth").click()
  depth, depth_frame, _ = _settled(page, after=k)
  assert depth_frame == small_frame and depth.shape == small.shape
  assert "render cached" in page.inner_text("body")
  assert np.abs(depth.astype(float) - small.astype(float)).mean() > 10.0
  _click_a_training_camera(page, after=k)


def _click_a_training_camera(page, after: int) -> None:
  """Zooms out (the mouse wheel), clicks the apex of the training camera frustum nearest the middle
  of the window (projected with the camera the page shows): the tab's camera jumps there."""
  from hw4_jax.nerf import demo_scene
  meta = json.loads(open(os.path.join(demo_scene.ensure(), "transforms_train.json")).read())
  eyes = np.array([f["transform_matrix"] for f in meta["frames"]])[:, :3, 3]
  page.mouse.move(150, 300)
  for _ in range(6):
    page.mouse.wheel(0, 400)
    time.sleep(0.2)
  _, frame, _ = _settled(page, after=after)
  w2c = np.linalg.inv(np.array(frame["transform_matrix"]))
  x = (w2c[:3, :3] @ eyes.T).T + w2c[:3, 3]
  scale = 640 / frame["w"]   # the image fills the 640-pixel-wide window
  u = (frame["cx"] + frame["fl_x"] * x[:, 0] / -x[:, 2]) * scale
  v = (frame["cy"] - frame["fl_y"] * x[:, 1] / -x[:, 2]) * scale
  free = ((x[:, 2] < -0.5) & (u > 5) & (u < 635) & (v > 5) & (v < 475)
          & ~((u > 300) & (v < 175)) & ~((u < 285) & (v < 140)))   # not under the panel / notice
  assert free.any(), "no training camera in view"
  i = int(np.argmin(np.where(free, (u - 320) ** 2 + (v - 300) ** 2, np.inf)))
  page.mouse.click(float(u[i]), float(v[i]))
  end = time.time() + 60
  while time.time() < end:
    shown = json.loads(page.evaluate(CAMERA_TEXT))
    if np.abs(np.array(shown["transform_matrix"])[:3, 3] - eyes[i]).max() < 1e-3:
      return
    time.sleep(0.3)
  raise AssertionError(f"a click on training camera {i}'s frustum did not move the camera there")
