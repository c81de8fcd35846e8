"""Capture: patches LLM clients and tools, emits OTel spans with run, sequence and payload hashes."""

from ._api import run, tool
from ._blobs import BlobStats
from ._payload import blob_stats
from ._runs import Run, current_run
from ._setup import Instrumentation, flush, instrument, uninstrument
from .memory import memory

__all__ = ["BlobStats", "Instrumentation", "Run", "blob_stats", "current_run", "flush", "instrument", "memory",
           "run", "tool", "uninstrument"]
