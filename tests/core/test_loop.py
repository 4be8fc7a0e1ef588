"""core.loop: the stops (budget, simulated preemption, signals), metrics.jsonl on resume, pacing."""

import json
import os
import signal

import jax
import jax.numpy as jnp
import ml_collections
import optax
import pytest

from hw4_jax.core import interrupt
from hw4_jax.core.loop import Loop
from hw4_jax.core.state import TrainState
from tests.helpers import run_python


def _config(**kw):
  c = ml_collections.ConfigDict(dict(log_every=1, checkpoint_every=3, keep_checkpoints=2,
                                     time_budget_s=0.0, preempt_at=""))
  c.update(kw)
  return c


def _state():
  return TrainState.create(params={"w": jnp.zeros(3)}, tx=optax.sgd(0.1), rng=jax.random.PRNGKey(0))


_step = jax.jit(lambda s: (s.apply_gradients({"w": jnp.ones(3)}), {"loss": jnp.sum(s.params["w"])}))


def _train(config, workdir, total=6):
  """Steps until the end or a stop; returns (last step, stopped early)."""
  with Loop(config, str(workdir), "toy", total, str(workdir / "ckpt")) as loop:
    state, _ = loop.restore(_state(), {})
    step = loop.start
    for step in range(loop.start + 1, total + 1):
      state, metrics = _step(state)
      if loop.end_step(step, state, metrics, {"pos": step}):
        break
    loop.finish(step, state, {"pos": step})
    return step, loop.stopped_early


def _rows(workdir):
  return [json.loads(l)["step"] for l in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_time_budget_stops_as_finished_and_the_rerun_continues(tmp_path):
  assert _train(_config(time_budget_s=1e-9), tmp_path) == (1, True)
  assert sorted(os.listdir(tmp_path / "ckpt")) == ["1"]
  assert _train(_config(), tmp_path) == (6, False)


def test_preemption_saves_and_exits_75(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    _train(_config(preempt_at="toy:4"), tmp_path)
  assert exit_info.value.code == 75 and "preempted after step 4" in capsys.readouterr().out
  assert "4" in os.listdir(tmp_path / "ckpt")
  assert _rows(tmp_path) == [1, 2, 3, 4]


def test_a_signal_saves_after_the_current_step(tmp_path, monkeypatch):
  monkeypatch.setattr(interrupt, "_pending", signal.SIGTERM)
  with pytest.raises(interrupt.Interrupted) as info:
    _train(_config(), tmp_path)
  assert info.value.status == 143 and "toy checkpoint saved at step 1" in info.value.line()
  assert os.listdir(tmp_path / "ckpt") == ["1"]
  monkeypatch.setattr(interrupt, "_pending", None)
  assert _train(_config(), tmp_path) == (6, False)


def test_rows_past_the_checkpoint_are_not_duplicated_on_resume(tmp_path):
  with pytest.raises(SystemExit):
    _train(_config(preempt_at="toy:2", checkpoint_every=100), tmp_path)
  os.remove(tmp_path / "ckpt" / "2" / "_CHECKPOINT_METADATA")   # as if step 2's save never landed
  import shutil
  shutil.rmtree(tmp_path / "ckpt" / "2")
  _train(_config(checkpoint_every=100), tmp_path)   # starts over from step 0
  assert _rows(tmp_path) == [1, 2, 3, 4, 5, 6]


def test_pacing_keeps_at_most_two_steps_in_flight():
  """On 4 devices, a step that computes longer than the host takes to dispatch it: after
  `end_step(k)` the step k-2 has finished (without pacing the host runs far ahead)."""
  out = run_python("""
      import jax, jax.numpy as jnp, ml_collections, optax, tempfile
      from hw4_jax.core import mesh as mesh_lib
      from hw4_jax.core.loop import Loop
      from hw4_jax.core.state import TrainState
      mesh = mesh_lib.make_mesh()
      def step(state, batch):
        x = batch
        for _ in range(30):
          x = jnp.tanh(x @ state.params["w"])
        return state.apply_gradients({"w": jnp.mean(x) * jnp.ones((256, 256))}), {"m": jnp.mean(x)}
      fn = mesh_lib.jit_step(step, mesh)
      c = ml_collections.ConfigDict(dict(log_every=1000, checkpoint_every=1000))
      state = mesh_lib.replicate(TrainState.create(params={"w": jnp.eye(256)}, tx=optax.sgd(1e-3),
                                                   rng=jax.random.PRNGKey(0)), mesh)
      batch = mesh_lib.shard_batch(jnp.ones((512, 256)), mesh)
      work = tempfile.mkdtemp()
      outs, late = [], 0
      with Loop(c, work, "pace", 40, work + "/ckpt") as loop:
        state, _ = loop.restore(state, {})
        for k in range(1, 41):
          state, m = fn(state, batch)
          outs.append(m["m"])
          loop.end_step(k, state, m)
          late += sum(not o.is_ready() for o in outs[:max(k - 2, 0)])
        loop.finish(40, state)
      print("LATE", late, "DEVICES", jax.device_count())
      """, devices=4)
  assert "LATE 0 DEVICES 4" in out, out
