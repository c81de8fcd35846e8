"""Anthropic client instrumentation: Messages, plain and streamed, sync and async.

Same two-level design as the OpenAI patch (see :mod:`._model_call`). The
client's ``request()`` makes the ``chat {model}`` span for every
``POST /v1/messages`` (beta included), so ``messages.create()``,
``create(stream=True)``, the ``messages.stream()`` manager (which posts on
``__enter__``, bypassing ``create``) and raw responses are all covered. The
bytes are taken at ``_attempt_request``, the SDK's one HTTP attempt.

Replay: ``_attempt_request`` builds and sends in one step, so while a player
is installed the wrapper builds the request itself with the SDK's own
``_prepare_options``/``_build_request`` to learn the exact body, asks the
seam, and returns the recorded response without sending; when the player
says "go live", the SDK's method runs as usual. Without a player nothing is
built twice.
"""

from __future__ import annotations

from typing import Any, Collection

import wrapt

from . import seam
from ._genai_anthropic import messages_request, messages_response, messages_stream
from ._guard import guarded
from ._model_call import (Api, ModelCall, PatchingInstrumentor, async_request_wrapper, begin, current_call,
                          recorded_message, recorded_response, request_body, request_wrapper)

__all__ = ["AnthropicInstrumentor"]

_MESSAGES = Api("chat", messages_request, messages_response, messages_stream, (b"event: message_stop",),
                request_id_header="request-id")


def _start(instance: Any, args: tuple, kwargs: dict[str, Any]) -> ModelCall | None:
    options = args[1] if len(args) > 1 else kwargs["options"]
    if options.url.split("?", 1)[0] != "/v1/messages" or options.method.lower() != "post":
        return None
    body = request_body(options)
    url = instance.base_url
    server = (url.host, url.port or (443 if url.scheme == "https" else 80))
    return begin(_MESSAGES, "anthropic", body, bool(kwargs.get("stream")), server)


def _no_response(served: seam.Served, request: Any) -> BaseException:
    import anthropic

    if "Timeout" in served.error_type:
        return anthropic.APITimeoutError(request=request)
    return anthropic.APIConnectionError(message=recorded_message(served, "Connection error."), request=request)


def _request_of(response: Any) -> bytes:
    return bytes(response.request.content)


def _failed_request(call: ModelCall, exc: BaseException) -> None:
    """The body of an attempt that got no response, from the SDK error that carries the request."""
    request = getattr(exc, "request", None)
    if request is not None:
        call.request = bytes(request.content)


def _options(args: tuple, kwargs: dict[str, Any]) -> Any:
    from anthropic._compat import model_copy

    return model_copy(args[0] if args else kwargs["options"])


def _served(call: ModelCall, instance: Any, prepared: Any, kwargs: dict[str, Any]) -> Any:
    """With a player installed: the recorded response for this attempt, or ``None`` to go live."""
    request = instance._build_request(prepared, retries_taken=kwargs.get("retries_taken", 0))
    call.request = bytes(request.content)
    served = call.serve()
    return None if served is None else recorded_response(call, served, request, _no_response)


def _attempt(wrapped: Any, instance: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    call = current_call()
    if call is None:
        return wrapped(*args, **kwargs)
    call.sending(None)
    guarded(call.demote_current)
    response = None
    if seam.active() is not None:
        prepared = instance._prepare_options(_options(args, kwargs))
        response = _served(call, instance, prepared, kwargs)
    if response is None:
        try:
            response, prepared = wrapped(*args, **kwargs)
        except BaseException as exc:
            guarded(_failed_request, call, exc)
            raise
        call.request = guarded(_request_of, response)
    if guarded(call.received, response, False):
        call.response = response.read()
    return response, prepared


async def _attempt_async(wrapped: Any, instance: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    call = current_call()
    if call is None:
        return await wrapped(*args, **kwargs)
    call.sending(None)
    guarded(call.demote_current)
    response = None
    if seam.active() is not None:
        prepared = await instance._prepare_options(_options(args, kwargs))
        response = _served(call, instance, prepared, kwargs)
    if response is None:
        try:
            response, prepared = await wrapped(*args, **kwargs)
        except BaseException as exc:
            guarded(_failed_request, call, exc)
            raise
        call.request = guarded(_request_of, response)
    if guarded(call.received, response, True):
        call.response = await response.aread()
    return response, prepared


class AnthropicInstrumentor(PatchingInstrumentor):
    """Registered as the ``tracetape_anthropic`` opentelemetry_instrumentor entry point."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("anthropic >= 2",)  # the httpx2-based SDK: earlier ones speak httpx

    def _patch_list(self) -> list[tuple[Any, str, Any]]:
        from anthropic._base_client import AsyncAPIClient, SyncAPIClient

        wrap = wrapt.FunctionWrapper
        return [
            (SyncAPIClient, "request", wrap(SyncAPIClient.request, request_wrapper(_start))),
            (AsyncAPIClient, "request", wrap(AsyncAPIClient.request, async_request_wrapper(_start))),
            (SyncAPIClient, "_attempt_request", wrap(SyncAPIClient._attempt_request, _attempt)),
            (AsyncAPIClient, "_attempt_request", wrap(AsyncAPIClient._attempt_request, _attempt_async)),
        ]
