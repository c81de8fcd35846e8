"""Put on PYTHONPATH by ``tracetape run``: record this Python process.

Any ``sitecustomize`` that was already on the path runs first, as it would
have without us. Nothing here may stop the program: a failure is logged and
the program runs unrecorded.
"""

import importlib.machinery
import importlib.util
import logging
import os
import sys


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    path = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    ours = sys.modules.get("sitecustomize")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules["sitecustomize"] = ours


def _start() -> None:
    from tracetape.instrumentation.launcher import autostart

    autostart()


for _step in (_chain, _start):
    try:
        _step()
    except Exception:  # noqa: BLE001 - the host program must start whatever happens here
        logging.getLogger("tracetape").warning("tracetape autostart: %s failed", _step.__name__, exc_info=True)
