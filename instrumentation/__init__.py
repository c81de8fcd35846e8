"""Capture: patches LLM clients and tools, emits OTel spans with run, sequence and payload hashes."""

from ._api import run, tool
from ._runs import Run, current_run
from ._setup import Instrumentation, flush, instrument, uninstrument

__all__ = ["Instrumentation", "Run", "current_run", "flush", "instrument", "run", "tool", "uninstrument"]
