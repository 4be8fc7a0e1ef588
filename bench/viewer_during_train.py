"""The training slowdown of `view.during_train=True` (docs/viewer.md): the same DVGO run without the
viewer, with the viewer and no tab open, and with one headless-Chromium tab whose camera keeps
orbiting (mouse drags through the page: the worst case, a render after every move).

    python bench/viewer_during_train.py [--preset=demo] [--fine_iters=400] [--every=100]

Prints each run's steady-state fine-stage steps/s (the mean of the logged rates after the first log
line, which includes compilation) and the slowdown fractions. Needs the viewer extra and Chromium.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = re.compile(r"^\[fine\] (\d+)/\d+ .*\| ([\d.]+) it/s")


def _run(args, tab: bool, chromium: str | None) -> float:
  proc = subprocess.Popen([sys.executable, "-m", "hw4_jax.main", *args], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  rates, url, stop = [], [], threading.Event()
  browser = None
  for line in proc.stdout:
    if line.startswith("[view] open "):
      url.append(line.split()[2])
      if tab:
        browser = threading.Thread(target=_orbit, args=(url[0], chromium, stop), daemon=True)
        browser.start()
    m = RATE.match(line)
    if m:
      rates.append(float(m.group(2)))
  proc.wait()
  stop.set()
  if browser is not None:
    browser.join(timeout=30)
  if proc.returncode:
    raise SystemExit(f"run failed ({proc.returncode})")
  steady = rates[1:] or rates
  return sum(steady) / len(steady)


def _orbit(url: str, chromium: str, stop: threading.Event) -> None:
  """One tab that drags its camera around until `stop`."""
  from playwright.sync_api import sync_playwright
  with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=chromium, args=[
        "--no-sandbox", "--use-gl=swiftshader", "--enable-unsafe-swiftshader"])
    page = browser.new_page(viewport={"width": 640, "height": 480})
    page.goto(url)
    x = 200
    while not stop.is_set():
      page.mouse.move(x, 320)
      page.mouse.down()
      page.mouse.move(x + 60, 310, steps=10)
      page.mouse.up()
      time.sleep(0.5)
    browser.close()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--preset", default="demo")
  parser.add_argument("--fine_iters", type=int, default=400)
  parser.add_argument("--coarse_iters", type=int, default=100)
  parser.add_argument("--every", type=int, default=100)
  opts = parser.parse_args()
  chromium = os.environ.get("HW4_CHROMIUM") or shutil.which("chromium")
  base = [f"--config=configs/dvgo.py:{opts.preset}", f"--config.fine.num_iters={opts.fine_iters}",
          f"--config.coarse.num_iters={opts.coarse_iters}", "--config.fine.pg_scale=(50,)",
          "--config.log_every=50", "--config.eval.lpips=False", "--config.view.port=0",
          f"--config.view.update_every={opts.every}"]
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    for name, extra, tab in (("no viewer", [], False),
                             ("viewer, no tab", ["--config.view.during_train=True"], False),
                             ("viewer, orbiting tab", ["--config.view.during_train=True"], True)):
      if tab and not chromium:
        print("no Chromium: the orbiting-tab run is skipped")
        continue
      t0 = time.time()
      results[name] = _run([*base, *extra, f"--workdir={tmp}/{len(results)}"], tab, chromium)
      print(f"{name}: {results[name]:.2f} fine steps/s ({time.time() - t0:.0f} s run); load "
            f"{os.getloadavg()[0]:.2f}", flush=True)
  ref = results["no viewer"]
  for name, rate in results.items():
    print(f"{name:>22}: {rate:6.2f} steps/s, slowdown {1 - rate / ref:+.1%}")


if __name__ == "__main__":
  main()
