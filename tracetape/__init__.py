"""tracetape: record every agent run as a replayable artifact.

``tracetape.instrument()`` in the agent, ``with tracetape.run(agent=...)``
around a run, ``@tracetape.tool`` on tool functions. Reading and replaying
live in ``tracetape.replay``; the collector in ``tracetape.collector``.
"""

from tracetape.instrumentation import Run, current_run, flush, instrument, run, tool, uninstrument

__all__ = ["Run", "current_run", "flush", "instrument", "run", "tool", "uninstrument"]
__version__ = "0.1.0"
