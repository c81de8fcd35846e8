"""The environment a run started in: one ``environment`` event at run start.

Recorded: allow-listed environment variables, the working directory, argv,
the Python version and platform, and versions of the installed packages an
agent's behaviour depends on. Nothing that looks like a secret: a variable
whose name suggests a credential is left out even when allow-listed, URLs
lose their user-info, and the payload goes through redaction like any other.

During replay the recorded snapshot is served, and the allow-listed
variables are restored from it (set, or removed when the recording did not
have them), so the agent sees the locale, time zone and endpoints it saw
then. tracetape's and OTel's own variables are recorded but never restored:
they configure the replay's own recording.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import sys
import time
from importlib import metadata
from typing import Any, Iterable

from opentelemetry.trace import SpanKind

from tracetape.schemas.attributes import ENVIRONMENT_PREVIEW as PREVIEW
from tracetape.schemas.config import ENV_ALLOW, setting
from tracetape.schemas.events import EventKind

from . import seam
from ._boundary import ask_player, finish, start
from ._guard import guarded
from ._payload import preview, to_json_bytes
from .redaction import REDACTED, redact_text, secret_name

__all__ = ["snapshot", "configure", "DEFAULT_ENV", "DEFAULT_PACKAGES", "ENV_ALLOW"]

DEFAULT_ENV = (
    "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_TIME", "LC_NUMERIC", "TZ", "PYTHONHASHSEED", "PYTHONIOENCODING",
    "PYTHONUTF8", "OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_VERSION", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
    "AZURE_OPENAI_ENDPOINT", "ANTHROPIC_BASE_URL", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TRACETAPE_PROJECT",
    "OTEL_SERVICE_NAME",
)
DEFAULT_PACKAGES = (
    "tracetape", "openai", "anthropic", "mcp", "httpx", "httpx2", "requests", "pydantic", "tiktoken", "langchain",
    "langchain-core", "langgraph", "llama-index-core", "litellm", "openai-agents", "crewai", "autogen-agentchat",
    "smolagents", "instructor", "dspy", "transformers", "opentelemetry-sdk",
)
NAME = "environment"
_NOT_RESTORED = ("TRACETAPE_", "OTEL_")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
# Nothing is asked but "the environment": which variables are recorded is configuration, and a
# replay configured differently is not a different agent.
_REQUEST = to_json_bytes({})

_env_names: tuple[str, ...] = ()
_packages: tuple[str, ...] = DEFAULT_PACKAGES


def configure(env: Iterable[str] | None = None, packages: Iterable[str] | None = None) -> None:
    """Variables recorded (defaults + ``TRACETAPE_ENV_ALLOW`` + *env*) and packages whose versions are recorded."""
    global _env_names, _packages
    extra = [n.strip() for n in setting(ENV_ALLOW).split(",") if n.strip()]
    names = {*DEFAULT_ENV, *extra, *(env or ())}
    _env_names = tuple(sorted(n for n in names if not secret_name(n)))
    if packages is not None:
        _packages = tuple(sorted(set(packages)))


@functools.lru_cache(maxsize=1)
def _versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions (a process's packages do not change while it runs: looked up once)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


configure()


def _clean(value: str) -> str:
    return redact_text(_USERINFO.sub(REDACTED + "@", value), "environment")


def _current() -> dict[str, Any]:
    return {
        "env": {n: _clean(os.environ[n]) for n in _env_names if n in os.environ},
        "cwd": os.getcwd(),
        "argv": [_clean(a) for a in sys.argv],
        "python": {"implementation": platform.python_implementation(), "version": platform.python_version()},
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine()},
        "packages": _versions(_packages),
    }


def snapshot() -> None:
    """Record the environment as an event of the current run; replaying, restore the recorded variables.

    Call it inside the run, with the run's span current (``tracetape.run()`` does, at start).
    """
    span = guarded(start, NAME, EventKind.ENVIRONMENT, _REQUEST, {}, SpanKind.INTERNAL)
    served = ask_player(span, EventKind.ENVIRONMENT, NAME, _REQUEST) if _recorded_there() else None
    if served is not None:
        guarded(_restore, served)
    if span is not None:
        guarded(_finish, span, served)


def _recorded_there() -> bool:
    """Whether a replay's recording has an environment to serve.

    Recordings made before every run began with one have none; that is not the
    agent doing something new, so the replay is not asked (which, strict,
    would stop there) and the environment is simply recorded.
    """
    return bool(guarded(seam.recorded, EventKind.ENVIRONMENT, default=True))


def _finish(span: Any, served: seam.Served | None) -> None:
    # A replay records the environment it served, as every served call does: the replayed run then
    # reads, and diffs, like the recording.
    payload = served.response if served is not None else to_json_bytes(_current())
    span.set_attribute(PREVIEW, preview(payload.decode("utf-8", "replace")))
    finish(span, payload)


def _restore(served: seam.Served) -> None:
    recorded = json.loads(served.response).get("env", {}) if served.response else {}
    tz_before = os.environ.get("TZ")
    for name in _env_names:
        if name.startswith(_NOT_RESTORED):
            continue
        value = recorded.get(name)
        if value is None:
            os.environ.pop(name, None)
        elif REDACTED not in value:
            os.environ[name] = value
    if os.environ.get("TZ") != tz_before and hasattr(time, "tzset"):
        time.tzset()
