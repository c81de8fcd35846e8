"""instrument() takes the startup heap out of the garbage collector's scans, unless told not to."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROGRAM = """
import gc, json, tracetape
before = gc.get_freeze_count()
tracetape.instrument("http://127.0.0.1:9")
print(json.dumps([before, gc.get_freeze_count()]))
"""


@pytest.mark.parametrize("value, frozen", [(None, True), ("false", False)])
def test_the_objects_alive_at_instrument_are_frozen_by_default(value, frozen):
    env = {k: v for k, v in os.environ.items() if k != "TRACETAPE_GC_FREEZE"}
    if value is not None:
        env["TRACETAPE_GC_FREEZE"] = value
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert before == 0
    assert (after > 10_000) is frozen, after  # the imported SDKs alone are tens of thousands of objects
