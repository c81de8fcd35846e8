"""OpenAI client instrumentation: Chat Completions and Responses; sync, async, streamed.

Two patch points per client class work together (see :mod:`._model_call`).
``OpenAI.request`` / ``AsyncOpenAI.request`` make the semantic ``chat
{model}`` span, one per API call whatever the retries. Patching there, not
``Completions.create``, also covers ``parse()``, the ``stream()`` helpers and
``with_raw_response``, which all call ``request()`` without ``create()``; and
patching the client classes themselves, not their base, keeps working when
OpenInference (which sets ``OpenAI.request``) was instrumented first.
``_send_request`` is where the exact bytes cross the wire: it takes the
request body as sent and the response as received, and it is where replay
serves recorded bytes back (``seam.serve``) as the SDK's own httpx2 response.

Any OpenAI-compatible ``base_url`` works; Azure (``AzureOpenAI`` or an
``*.azure.*`` host) is reported as provider ``azure.ai.openai``.

Alongside OpenLLMetry, OpenInference or the official OpenTelemetry OpenAI
instrumentation (``opentelemetry-instrumentation-openai``,
``openinference-instrumentation-openai``,
``opentelemetry-instrumentation-genai-openai``): each makes its own span per
call (OpenLLMetry and the official one wrap ``create()``, OpenInference wraps
``OpenAI.request``), and those spans are kept as they are. tracetape still
records exactly one model-call event per call: only its span carries
``tracetape.event.kind = model_call`` and the payload blobs, and a GenAI span
of theirs around or inside the call is marked ``tracetape.event.kind =
other``, so a run lists the call once and counts its tokens once.

The SDK's own HTTP exchange is part of the model-call event: while the call
runs, :func:`._nesting.inside_model_call` is true and the HTTP-level patches
(httpx2, httpx, requests) stand aside.
"""

from __future__ import annotations

from typing import Any, Collection

import wrapt

from . import seam
from ._genai import chat_request, chat_response, chat_stream
from ._genai_responses import responses_request, responses_response, responses_stream
from ._guard import guarded
from ._model_call import (Api, ModelCall, PatchingInstrumentor, async_request_wrapper, begin, current_call,
                          recorded_message, recorded_response, request_body, request_wrapper)

__all__ = ["OpenAIInstrumentor"]

_APIS = {
    "/chat/completions": Api("chat", chat_request, chat_response, chat_stream, (b"data: [DONE]",)),
    "/responses": Api("chat", responses_request, responses_response, responses_stream,
                      (b"event: response.completed", b"event: response.incomplete", b"event: response.failed")),
}
_azure_clients: tuple[type, ...] = ()


def _provider(instance: Any) -> str:
    if isinstance(instance, _azure_clients) or ".azure." in f".{instance.base_url.host}":
        return "azure.ai.openai"
    return "openai"


def _start(instance: Any, args: tuple, kwargs: dict[str, Any]) -> ModelCall | None:
    """A model call when ``request()`` posts to a model endpoint; ``None`` leaves other calls alone."""
    options = args[1] if len(args) > 1 else kwargs["options"]
    api = _APIS.get(options.url)
    if api is None or options.method.lower() != "post":
        return None
    body = request_body(options)
    url = instance.base_url
    server = (url.host, url.port or (443 if url.scheme == "https" else 80))
    return begin(api, _provider(instance), body, bool(kwargs.get("stream")), server)


def _body(request: Any) -> bytes:
    return bytes(request.content)


def _no_response(served: seam.Served, request: Any) -> BaseException:
    """The SDK error of a recorded call that got no HTTP response (OpenAI errors are not retried)."""
    import openai

    if "Timeout" in served.error_type:
        return openai.APITimeoutError(request=request)
    return openai.APIConnectionError(message=recorded_message(served, "Connection error."), request=request)


def _send(wrapped: Any, instance: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    call = current_call()
    if call is None:
        return wrapped(*args, **kwargs)
    request = args[0] if args else kwargs["request"]
    call.sending(guarded(_body, request))
    guarded(call.demote_current)
    served = call.serve()
    if served is not None:
        response = recorded_response(call, served, request, _no_response)
    else:
        response = wrapped(*args, **kwargs)
    if guarded(call.received, response, False):
        call.response = response.read()
    return response


async def _send_async(wrapped: Any, instance: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    call = current_call()
    if call is None:
        return await wrapped(*args, **kwargs)
    request = args[0] if args else kwargs["request"]
    call.sending(guarded(_body, request))
    guarded(call.demote_current)
    served = call.serve()
    if served is not None:
        response = recorded_response(call, served, request, _no_response)
    else:
        response = await wrapped(*args, **kwargs)
    if guarded(call.received, response, True):
        call.response = await response.aread()
    return response


class OpenAIInstrumentor(PatchingInstrumentor):
    """Registered as the ``tracetape_openai`` opentelemetry_instrumentor entry point."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("openai >= 3",)  # the httpx2-based SDK: earlier ones speak httpx

    def _patch_list(self) -> list[tuple[Any, str, Any]]:
        global _azure_clients
        import openai
        from openai._base_client import AsyncAPIClient, SyncAPIClient

        _azure_clients = (openai.AzureOpenAI, openai.AsyncAzureOpenAI)
        wrap = wrapt.FunctionWrapper
        return [
            (openai.OpenAI, "request", wrap(openai.OpenAI.request, request_wrapper(_start))),
            (openai.AsyncOpenAI, "request", wrap(openai.AsyncOpenAI.request, async_request_wrapper(_start))),
            (SyncAPIClient, "_send_request", wrap(SyncAPIClient._send_request, _send)),
            (AsyncAPIClient, "_send_request", wrap(AsyncAPIClient._send_request, _send_async)),
        ]
