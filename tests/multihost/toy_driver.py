"""`tests/core/toy_train.py` as one process of a multi-process job (launched by local_multiprocess.sh).

  LAUNCH_MODULE=tests.multihost.toy_driver launch/local_multiprocess.sh K WORKDIR NUM_STEPS [STOP_AFTER]

Joins the job from the JAX_* environment like `hw4_jax.main` does and runs the toy training through
`hw4_jax.tasks.run` (so its error path is the real one). With `TOY_FAIL_PROCESS=I`, process I raises a
UserError (`TOY_FAIL_KIND=crash`: a RuntimeError) when it reads the batch of step `TOY_FAIL_AT`
(default 3) while the others keep going: the failure-handling tests.
"""

import os
import sys

import ml_collections

from hw4_jax import tasks
from hw4_jax.core import distributed
from hw4_jax.core.errors import UserError


def _train(config, workdir):
  import jax
  from tests.core import toy_train
  fail = os.environ.get("TOY_FAIL_PROCESS", "")
  if fail and int(fail) == jax.process_index():
    read, at = toy_train.host_batch, int(os.environ.get("TOY_FAIL_AT", "3"))

    def failing(position):
      if position >= at and os.environ.get("TOY_FAIL_KIND", "user_error") == "crash":
        raise RuntimeError(f"toy crash at batch {position} on process {jax.process_index()}")
      if position >= at:
        raise UserError(f"toy data: batch {position} is unreadable on process {jax.process_index()}")
      return read(position)

    toy_train.host_batch = failing
  stop_after = int(os.environ.get("TOY_STOP_AFTER", "0"))   # a shorter run, as an interruption
  final = toy_train.train(workdir, config.train.num_steps, stop_after or None)  # would make it
  import numpy as np
  from hw4_jax.core import mesh
  leaves = mesh.to_host(jax.tree.leaves({"p": final.params, "s": final.model_state}))
  if jax.process_index() == 0:
    np.save(f"{workdir}/params.npy", np.concatenate([np.ravel(x) for x in leaves]))
  print(f"devices={jax.device_count()} step={int(mesh.to_host(final.step))}", flush=True)


MODES = {"train": _train}

if __name__ == "__main__":
  distributed.maybe_initialize()
  tasks.TASKS["toy"] = __name__ if __name__ != "__main__" else "tests.multihost.toy_driver"
  os.environ["TOY_STOP_AFTER"] = sys.argv[3] if len(sys.argv) > 3 else "0"   # not in the config
  cfg = ml_collections.ConfigDict({"task": "toy", "mode": "train",
                                   "train": {"num_steps": int(sys.argv[2])}})
  sys.exit(tasks.run(cfg, sys.argv[1]))
