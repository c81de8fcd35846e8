"""tracetape: record every agent run as a replayable artifact.

``tracetape.instrument()`` in the agent, ``with tracetape.run(agent=...)``
around a run, ``@tracetape.tool`` on tool functions, ``tracetape.memory(name,
value)`` for the agent's scratchpad; ``tracetape.blob_stats()`` tells how
payload uploads are going. Reading and replaying live in ``tracetape.replay``;
the collector in ``tracetape.collector``.
"""

from tracetape.instrumentation import (BlobStats, Run, blob_stats, current_run, flush, instrument, memory, run, tool,
                                       uninstrument)

__all__ = ["BlobStats", "Run", "blob_stats", "current_run", "flush", "instrument", "memory", "run", "tool",
           "uninstrument"]
__version__ = "0.1.0"
