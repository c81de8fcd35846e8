"""Whether a call on the hot path (clock, random, uuid, open) is one to record.

The patched functions are called everywhere — by the agent, by the libraries
it uses, by the OTel SDK and by tracetape itself — so they decide in three
steps, cheapest first:

1. Is any run open in this process? (a list's truth value; outside runs this
   is all a patched call costs on top of the original)
2. Is the caller inside a run's logical task? Work the run started carries a
   task slot; our own workers (blob uploader, span exporter) start outside any
   run and carry none.
3. Is the calling module agent logic? Draws made by infrastructure — the
   asyncio loop's clock, HTTP connection pools, model SDK internals
   (idempotency keys), logging timestamps, the OTel SDK's span ids, tracetape
   itself — are not part of what the agent decided, and their number changes
   between a recording and its replay (served calls skip the network), which
   would shift every value after them. They are left alone.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable

from opentelemetry import context as otel_context

from . import _runs
from ._tasks import TaskSlot, current_slot

__all__ = ["EXCLUDED_CALLERS", "PASS_THROUGH", "exclude_callers", "open_runs", "task_slot", "caller_excluded", "module_excluded",
           "excluded_modules", "current_otel_context"]

# Module prefixes (a module or a package and everything under it) whose calls are never recorded.
EXCLUDED_CALLERS: tuple[str, ...] = (
    # tracetape's own parts (the bundled demo agent is user code and stays recorded)
    "tracetape.instrumentation", "tracetape.replay", "tracetape.collector", "tracetape.schemas",
    # telemetry and transport
    "opentelemetry", "grpc", "google.protobuf", "wrapt",
    # interpreter and stdlib machinery whose call counts depend on timing, not on the agent
    "asyncio", "concurrent", "threading", "selectors", "socket", "ssl", "queue", "sched", "logging",
    "importlib", "pkgutil", "site", "warnings", "linecache", "traceback", "tokenize", "uuid", "tempfile",
    "multiprocessing", "subprocess",
    # HTTP stacks and model SDKs: the exchange itself is the recorded (and served) event
    "httpx", "httpx2", "httpcore", "httpcore2", "h11", "h2", "hpack", "anyio", "sniffio", "trio", "urllib3", "requests",
    "aiohttp", "websockets", "openai", "anthropic", "mcp",
    # logging and progress display
    "structlog", "loguru", "tqdm", "rich",
)

_modules: frozenset[str] = frozenset()
_packages: tuple[str, ...] = ()
_cache: dict[str | None, bool] = {}


def exclude_callers(prefixes: Iterable[str]) -> None:
    """Set the module prefixes whose calls are not recorded (replaces the defaults when called)."""
    global _modules, _packages
    cleaned = [p.strip().rstrip(".") for p in prefixes if p.strip()]
    _modules = frozenset(cleaned)
    _packages = tuple(p + "." for p in cleaned)
    _cache.clear()


exclude_callers(EXCLUDED_CALLERS)


open_runs = _runs.open_runs


# The fast accessors below are what the hot path binds to; the functions are for everyone else.
task_slot: Callable[[], TaskSlot | None] = current_slot  # the caller's logical task; None outside a run's work


def module_excluded(name: str | None) -> bool:
    """Whether calls from module *name* are left alone (cached per module)."""
    hit = _cache.get(name)
    if hit is None:
        text = name or ""
        hit = _cache[name] = text in _modules or text.startswith(_packages)
    return hit


def excluded_modules() -> dict[str | None, bool]:
    """The per-module verdict cache itself: ``.get(name)`` is the hot path, :func:`module_excluded` the miss."""
    return _cache


# Modules that only pass a call on (``Path.read_text`` opens the file for its caller): the caller that
# decides is the first frame outside them.
PASS_THROUGH: frozenset[str] = frozenset({"pathlib", "codecs", "io", "_pyio", "fileinput"})


def caller_excluded(depth: int) -> bool:
    """Whether the code *depth* levels above the caller of this function belongs to an excluded module,
    looking through :data:`PASS_THROUGH` helpers to the code that called them."""
    frame = sys._getframe(depth + 1)
    name = frame.f_globals.get("__name__")
    while name in PASS_THROUGH and frame.f_back is not None:
        frame = frame.f_back
        name = frame.f_globals.get("__name__")
    return module_excluded(name)


def _context_getter() -> Callable[[], Any]:
    # The OTel context lives in a context variable; reading it directly saves two Python calls per
    # draw. Any other runtime context implementation goes through the public function.
    variable = getattr(getattr(otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)
    return variable.get if variable is not None and hasattr(variable, "get") else otel_context.get_current


current_otel_context: Callable[[], Any] = _context_getter()
