"""TrainState and checkpoint retention."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hw4_jax.core.checkpoint import Checkpointer
from hw4_jax.core.state import TrainState


def _state():
  return TrainState.create(params={"w": jnp.ones(3)}, tx=optax.sgd(0.5),
                           rng=jax.random.PRNGKey(0), model_state={"count": jnp.zeros(())})


def test_apply_gradients_steps_params_and_model_state():
  state = _state()
  new = state.apply_gradients({"w": jnp.array([1.0, 2.0, 3.0])}, model_state={"count": jnp.ones(())})
  np.testing.assert_allclose(new.params["w"], [0.5, 0.0, -0.5])
  assert int(new.step) == 1 and float(new.model_state["count"]) == 1.0
  assert not np.array_equal(jax.random.key_data(jax.random.wrap_key_data(state.step_rng())),
                            jax.random.key_data(jax.random.wrap_key_data(new.step_rng())))
  np.testing.assert_array_equal(new.step_rng(3), jax.random.fold_in(new.step_rng(), 3))


def test_checkpointer_keeps_k_and_restores_latest(tmp_path):
  state = _state()
  ckpt = Checkpointer(str(tmp_path / "ckpt"), every=2, keep=2)
  saved = []
  for step in range(1, 8):
    state = state.apply_gradients({"w": jnp.ones(3)})
    if ckpt.maybe_save(step, state, {"pos": step}, force=step == 7):
      saved.append(step)
  ckpt.close()
  assert saved == [2, 4, 6, 7]
  ckpt = Checkpointer(str(tmp_path / "ckpt"), every=2, keep=2)
  assert sorted(int(p.name) for p in (tmp_path / "ckpt").iterdir() if p.name.isdigit()) == [6, 7]
  restored, extra = ckpt.restore_or(_state(), {"pos": 0})
  ckpt.close()
  assert extra == {"pos": 7} and int(restored.step) == 7
  np.testing.assert_allclose(restored.params["w"], state.params["w"])
