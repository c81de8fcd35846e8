"""Instrumenting a test agent with the determinism capture points.

``tracetape.instrument()`` loads them itself once they are registered as entry points
(``tracetape_files``, ``tracetape_clock``, ``tracetape_random``); instrumenting them again here is then
a no-op. ``finish()`` removes them before ``tracetape.flush()``, so every open value batch is recorded
before the agent prints its result.
"""

import tracetape
from tracetape.instrumentation.clock import ClockInstrumentor
from tracetape.instrumentation.files import FilesInstrumentor
from tracetape.instrumentation.randomness import RandomInstrumentor

INSTRUMENTORS = (ClockInstrumentor, RandomInstrumentor, FilesInstrumentor)


def instrument(**options: object) -> None:
    tracetape.instrument(**options)  # type: ignore[arg-type]
    for cls in INSTRUMENTORS:
        cls().instrument()


def finish() -> None:
    for cls in INSTRUMENTORS:
        cls().uninstrument()
    tracetape.flush()
