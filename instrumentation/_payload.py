"""Links payload bytes to spans: hash on the span, bytes to the blob uploader.

The state lives in one module-level slot set by ``instrument()``; with no
uploader (not instrumented, or instrumented without blobs) payloads are still
hashed, so spans stay comparable across runs.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from opentelemetry.trace import Span

from tracetape.schemas import attributes as A

from ._blobs import BlobUploader, sha256_hex

__all__ = ["configure", "attach", "preview", "to_json_bytes", "redact_headers"]

_log = logging.getLogger(__name__)
_uploader: BlobUploader | None = None
_preview_bytes = 2048

# Header names whose values are secrets: never recorded, whatever the provider.
_SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie",
    "x-goog-api-key", "openai-api-key", "anthropic-api-key", "ocp-apim-subscription-key",
})
REDACTED = "[REDACTED]"


def configure(uploader: BlobUploader | None, preview_bytes: int) -> None:
    global _uploader, _preview_bytes
    _uploader = uploader
    _preview_bytes = preview_bytes


def attach(span: Span, role: str, data: bytes, content_type: str = "application/json") -> str:
    """Record *data* as the *role* payload of *span*; returns its SHA-256."""
    digest = _uploader.put(data, content_type) if _uploader is not None else sha256_hex(data)
    span.set_attribute(A.blob_attr(role), digest)
    span.set_attribute(A.blob_size_attr(role), len(data))
    return digest


def preview(text: str) -> str:
    """A readable prefix for a span attribute; the full text is in the blob."""
    if len(text) <= _preview_bytes:
        return text
    return text[:_preview_bytes] + "…"


def to_json_bytes(value: Any) -> bytes:
    """Canonical JSON bytes (sorted keys) so equal values hash equal."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr).encode()


def redact_headers(headers: Any) -> dict[str, str]:
    """Headers as a dict with every secret value replaced."""
    return {
        str(k).lower(): (REDACTED if str(k).lower() in _SECRET_HEADERS else str(v))
        for k, v in (headers.items() if hasattr(headers, "items") else headers)
    }
