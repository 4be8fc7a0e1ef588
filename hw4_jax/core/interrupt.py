"""SIGTERM (cluster preemption) and SIGINT (Ctrl-C) as requests to stop at the next safe point.

The handlers only record the signal. Training loops look at it after every step (`core.loop`): they
save a checkpoint and raise `Interrupted`, which `tasks.run` reports as one line and exit status
128 + signal (143, 130). Other phases (data loading, evaluation) call `check()` between units of
work. Raising from inside the handler instead, as Python's default SIGINT does, lands the exception
wherever the main thread happens to be: inside a garbage-collector callback it is only printed
("Exception ignored") and the run goes on; during XLA compilation the exit crashes. A second signal
ends the process at once, for a person who does not want to wait.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import jax

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_pending: int | None = None


class Interrupted(Exception):
  """A stop request honoured at a safe point; `where` says what was saved."""

  def __init__(self, signum: int, where: str = ""):
    super().__init__(where)
    self.signum, self.where = signum, where

  @property
  def status(self) -> int:
    return 128 + self.signum

  def line(self) -> str:
    name = signal.Signals(self.signum).name
    done = f"; {self.where}" if self.where else ""
    again = "" if "finished" in self.where else "; run the same command again to resume"
    return f"stopped by {name}{done}{again}"


def _handler(signum, frame) -> None:  # pylint: disable=unused-argument
  global _pending
  if _pending is not None:   # a second signal: stop now
    print(f"error: a second signal ({signal.Signals(signum).name}): exiting without saving",
          file=sys.stderr, flush=True)
    os._exit(128 + signum)
  _pending = signum


def install() -> None:
  """Installs the handlers (main thread only; elsewhere Python does not allow it)."""
  if threading.current_thread() is threading.main_thread():
    for sig in SIGNALS:
      signal.signal(sig, _handler)


def reset() -> None:
  global _pending
  _pending = None
  if threading.current_thread() is threading.main_thread():
    for sig in SIGNALS:
      signal.signal(sig, signal.SIG_DFL if sig == signal.SIGTERM else signal.default_int_handler)


def pending() -> int | None:
  """The signal received by this process, if any."""
  return _pending


def agreed() -> int | None:
  """The signal any process of the job received (a collective in a multi-process job, so that
  every process stops after the same step and saves the same checkpoint)."""
  if jax.process_count() == 1:
    return _pending
  from jax.experimental import multihost_utils
  import numpy as np
  seen = multihost_utils.process_allgather(np.int32(_pending or 0))
  nonzero = [int(s) for s in np.ravel(seen) if s]
  return nonzero[0] if nonzero else None


def check(where: str = "") -> None:
  """Raises `Interrupted` if a stop was requested (call between units of work)."""
  if _pending is not None:
    raise Interrupted(_pending, where)
