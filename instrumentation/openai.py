"""OpenAI client instrumentation (chat completions, sync, non-streaming).

Two patch points work together. ``Completions.create`` makes the semantic
``chat {model}`` span (one per call, whatever the retries). The client's
``_send_request`` is where the exact bytes cross the wire: it fills the
current call's exchange slot with the request body sent and the response
body received, which become the span's blobs. Capturing below the SDK's
parsing keeps the recording exact, and that same seam is where replay serves
recorded bytes back.
"""

from __future__ import annotations

import contextvars
import json
import logging
from typing import Any, Collection

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

from ._api import tracer
from ._genai import input_messages, output_messages
from ._guard import guarded
from . import seam
from ._payload import attach, preview, to_json_bytes

__all__ = ["OpenAIInstrumentor"]

_log = logging.getLogger(__name__)
_exchange: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("tracetape_openai", default=None)

_SAMPLING = {
    "temperature": A.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": A.GEN_AI_REQUEST_TOP_P,
    "max_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": A.GEN_AI_REQUEST_MAX_TOKENS,
    "seed": A.GEN_AI_REQUEST_SEED,
}


def _json_preview(value: Any) -> str:
    return preview(json.dumps(value, ensure_ascii=False, default=repr))


def _provider(instance: Any) -> str:
    base_url = str(getattr(getattr(instance, "_client", None), "base_url", ""))
    return "azure.ai.openai" if "azure" in base_url else "openai"


def _start(instance: Any, kwargs: dict[str, Any]) -> Any:
    model = str(kwargs.get("model", ""))
    attributes: dict[str, Any] = {
        A.EVENT_KIND: EventKind.MODEL_CALL.value,
        A.GEN_AI_OPERATION_NAME: "chat",
        A.GEN_AI_PROVIDER_NAME: _provider(instance),
        A.GEN_AI_REQUEST_MODEL: model,
    }
    for key, attribute in _SAMPLING.items():
        value = kwargs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[attribute] = value
    messages = kwargs.get("messages")
    if isinstance(messages, (list, tuple)):
        attributes[A.GEN_AI_INPUT_MESSAGES] = _json_preview(input_messages(messages))
    tools = kwargs.get("tools")
    if isinstance(tools, (list, tuple)):
        attributes[A.GEN_AI_TOOL_DEFINITIONS] = _json_preview(list(tools))
    return tracer().start_span(f"chat {model}".strip(), kind=SpanKind.CLIENT, attributes=attributes)


def _finish(span: Any, exchange: dict[str, Any], kwargs: dict[str, Any], error: BaseException | None) -> None:
    request = exchange.get("request")
    attach(span, seam.REQUEST, request if request is not None else to_json_bytes(kwargs))
    response = exchange.get("response")
    if response is not None:
        attach(span, seam.RESPONSE, response)
        span.set_attribute("http.response.status_code", exchange.get("status", 0))
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.set_attribute(A.ERROR_TYPE, type(error).__qualname__)
    elif response is not None:
        _response_attributes(span, json.loads(response))
    span.end()


def _response_attributes(span: Any, body: dict[str, Any]) -> None:
    span.set_attribute(A.GEN_AI_RESPONSE_ID, str(body.get("id", "")))
    span.set_attribute(A.GEN_AI_RESPONSE_MODEL, str(body.get("model", "")))
    choices = body.get("choices") or []
    span.set_attribute(A.GEN_AI_RESPONSE_FINISH_REASONS, [str(c.get("finish_reason")) for c in choices])
    span.set_attribute(A.GEN_AI_OUTPUT_MESSAGES, _json_preview(output_messages(choices)))
    usage = body.get("usage") or {}
    span.set_attribute(A.GEN_AI_USAGE_INPUT_TOKENS, int(usage.get("prompt_tokens") or 0))
    span.set_attribute(A.GEN_AI_USAGE_OUTPUT_TOKENS, int(usage.get("completion_tokens") or 0))


def _create_wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    if kwargs.get("stream"):
        return wrapped(*args, **kwargs)  # streaming capture is not in this instrumentor yet
    span = guarded(_start, instance, kwargs)
    if span is None:
        return wrapped(*args, **kwargs)
    exchange: dict[str, Any] = {"name": span.name if hasattr(span, "name") else ""}
    token = _exchange.set(exchange)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        guarded(_finish, span, exchange, kwargs, exc)
        raise
    finally:
        _exchange.reset(token)
    guarded(_finish, span, exchange, kwargs, None)
    return result


def _capture_request(exchange: dict[str, Any], request: Any) -> None:
    exchange["request"] = bytes(request.content)


def _capture_response(exchange: dict[str, Any], response: Any) -> None:
    exchange["status"] = int(response.status_code)
    exchange["response"] = bytes(response.read())


def _recorded_response(served: seam.Served, request: Any) -> Any:
    """The recorded exchange as the SDK's own response type, so it parses it as usual."""
    import httpx2

    if served.error_type and not served.response:
        raise httpx2.ConnectError(f"recorded failure: {served.error_message}", request=request)
    status = int(served.attributes.get("http.response.status_code") or 200)
    return httpx2.Response(status, content=served.response, request=request,
                           headers={"content-type": "application/json"})


def _send_wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    exchange = _exchange.get()
    if exchange is None or kwargs.get("stream"):
        return wrapped(*args, **kwargs)
    request = args[0] if args else kwargs.get("request")
    guarded(_capture_request, exchange, request)
    served = seam.serve(EventKind.MODEL_CALL, exchange.get("name", ""), exchange.get("request", b""))
    response = _recorded_response(served, request) if served is not None else wrapped(*args, **kwargs)
    guarded(_capture_response, exchange, response)
    return response


class OpenAIInstrumentor(BaseInstrumentor):
    """Registered as the ``tracetape_openai`` opentelemetry_instrumentor entry point."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("openai >= 2",)

    def _instrument(self, **kwargs: Any) -> None:
        wrapt.wrap_function_wrapper("openai.resources.chat.completions.completions", "Completions.create",
                                    _create_wrapper)
        wrapt.wrap_function_wrapper("openai._base_client", "SyncAPIClient._send_request", _send_wrapper)

    def _uninstrument(self, **kwargs: Any) -> None:
        import openai._base_client
        import openai.resources.chat.completions.completions as completions

        unwrap(completions.Completions, "create")
        unwrap(openai._base_client.SyncAPIClient, "_send_request")
