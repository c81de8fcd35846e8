"""HTTP exchanges of ``httpx2``, ``httpx`` and ``requests`` as ``http`` events.

One event per request on the wire (each redirect hop is its own event):
method, URL (secret query parameters and passwords redacted), status,
headers (secrets redacted), and the exact body bytes both ways. The
``request`` payload is canonical JSON — method, URL, the headers that do
not vary between runs, and the body (inline when it is short text, else its
SHA-256) — so the same call fingerprints the same; the exact request body
travels as the ``request_body`` payload. The ``response`` payload is the
response body exactly as it came off the connection (before content
decoding); status, reason and headers are span attributes. Replay rebuilds
the library's own response object from them, so the client decodes,
follows redirects and raises as it did.

Patch points sit one level above the connection, where every transport is
seen: ``Client._transport_for_url`` (httpx2, httpx: the selected transport
is wrapped, custom and mock transports included) and ``HTTPAdapter.send``
(requests). A streamed body is teed as the caller reads it; the event ends
when the body is done, the response is closed, or it is garbage collected,
whichever comes first.

Stays out of: our own traffic (OTel suppression, the collector endpoint),
and exchanges inside a model call, which the model-client patch records
byte for byte as part of its own event. Cookies are redacted, so a replayed
cookie jar holds placeholders; the ``Cookie`` header is left out of the
fingerprint for that reason.
"""

from __future__ import annotations

from typing import Any, Collection

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from . import _http, _httpx, _requests
from ._deferred import DeferredPatches
from ._http import REQUEST_BODY, REQUEST_HEADERS, RESPONSE_HEADERS, redact_url

__all__ = ["HTTPInstrumentor", "REQUEST_BODY", "REQUEST_HEADERS", "RESPONSE_HEADERS", "redact_url"]


class HTTPInstrumentor(BaseInstrumentor):
    """Registered as the ``tracetape_http`` opentelemetry_instrumentor entry point.

    Each library is patched when the application imports it (or at once if
    it already has); libraries that are not installed are simply never patched.
    """

    _patches: DeferredPatches | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        _http.configure()
        self._patches = self._patches or DeferredPatches([
            ("httpx2", _httpx.patches),
            ("httpx", _httpx.patches),
            ("requests.adapters", _requests.patches),
        ])
        self._patches.apply()

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._patches is not None:
            self._patches.undo()
