"""Stand-in for `python -m hw4_jax.main` in the launch-script tests: prints what it was given.

Prints one JSON line {argv, env (the launch-related variables)} and exits with the status in
`ECHO_EXIT_<JAX_PROCESS_ID>` (default 0), after `ECHO_SLEEP_<JAX_PROCESS_ID>` seconds (default 0).
"""

import json
import os
import sys
import time

KEYS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "JAX_PLATFORMS", "XLA_FLAGS",
        "CUDA_VISIBLE_DEVICES", "HW4_DISTRIBUTED", "PYTHONPATH")

if __name__ == "__main__":
  pid = os.environ.get("JAX_PROCESS_ID", "")
  print(json.dumps({"argv": sys.argv[1:], "env": {k: os.environ.get(k) for k in KEYS}}), flush=True)
  time.sleep(float(os.environ.get(f"ECHO_SLEEP_{pid}", "0")))
  sys.exit(int(os.environ.get(f"ECHO_EXIT_{pid}", "0")))
