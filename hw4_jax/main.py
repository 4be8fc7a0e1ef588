"""Entry point: `python -m hw4_jax.main --config=configs/<task>.py[:preset] --workdir=DIR`."""

import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from hw4_jax import tasks
from hw4_jax.core import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:preset].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and outputs.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-host).")


def main(argv):
  if len(argv) > 1:
    print(f"error: unexpected argument(s) {' '.join(argv[1:])!r}: options are --config=FILE[:preset], "
          "--workdir=DIR and --config.<key>=<value>", file=sys.stderr, flush=True)
    return 2
  absl_logging.set_verbosity(absl_logging.WARNING)  # e.g. JAX's INFO line about a missing TPU
  distributed.maybe_initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  return tasks.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  if tasks.HELP & set(sys.argv):
    __doc__ = tasks.usage()   # what absl prints for --help  # pylint: disable=redefined-builtin
  app.run(main, flags_parser=tasks.parse_flags)
