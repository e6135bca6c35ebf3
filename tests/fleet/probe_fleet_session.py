"""Run by tests/test_fleet_cleanup.py in a child pytest: a session that fails or is killed.

Not collected by the main run (its name does not start with ``test_``).
"""

import os
import sys
import time


def test_probe(fleet):
    print(f"FLEET-UP run={fleet.run_id}", flush=True)
    sys.stdout.flush()
    if os.environ["PROBE_MODE"] == "hang":
        time.sleep(300)
    raise AssertionError("this probe session fails on purpose")
