"""Links payload bytes to spans: hash on the span, bytes to the blob uploader.

The state lives in one module-level slot set by ``instrument()``; with no
uploader (not instrumented, or instrumented without blobs) payloads are still
hashed, so spans stay comparable across runs.

Every payload and preview is redacted first (``redaction``), so what is
hashed, stored and served back never holds a secret.

Payload sampling: failed runs keep every payload, successful runs only 1 in
N (``TRACETAPE_PAYLOAD_SAMPLE``, default 1: all). The pick is a hash of the
run id, so it is the same in every process of a run; a run the pick keeps
uploads at once, any other holds its payloads until :func:`run_finished`
says how it ended. Spans are never sampled: the event log is always complete,
and a step of a sampled-out run shows its hashes without bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from opentelemetry.trace import Span

from tracetape.schemas import attributes as A
from tracetape.schemas.config import PAYLOAD_SAMPLE, setting

from . import redaction
from ._blobs import BlobStats, BlobUploader, sha256_hex

__all__ = ["configure", "attach", "payload_attributes", "run_of", "preview", "preview_of", "cut", "redacted", "to_json_bytes", "redact_headers", "run_finished", "blob_stats",
           "sampled_in", "PAYLOAD_SAMPLE"]

_log = logging.getLogger(__name__)

_uploader: BlobUploader | None = None
_preview_bytes = 2048
_sample = 1
_PREVIEW_MARGIN = 256

# Header names whose values are secrets: never recorded, whatever the provider.
_SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie",
    "x-goog-api-key", "openai-api-key", "anthropic-api-key", "ocp-apim-subscription-key",
})
REDACTED = redaction.REDACTED


def configure(uploader: BlobUploader | None, preview_bytes: int, *, sample: int | None = None) -> None:
    """Where payloads go, how long previews are, and 1-in-*sample* payload sampling of successful runs."""
    global _uploader, _preview_bytes, _sample
    _uploader = uploader
    _preview_bytes = preview_bytes
    _sample = max(1, setting(PAYLOAD_SAMPLE, sample))


def run_of(span: Span) -> str | None:
    """The run id stamped on *span* (by the run processor at its start), if any."""
    run_id = (getattr(span, "attributes", None) or {}).get(A.RUN_ID)
    return run_id if isinstance(run_id, str) and run_id else None


def _held_by(run_id: str | None) -> str | None:
    """The run whose outcome decides on a payload of *run_id*, or ``None`` to upload it now."""
    if _sample <= 1 or run_id is None or sampled_in(run_id, _sample):
        return None
    return run_id


def sampled_in(run_id: str, one_in: int) -> bool:
    """Whether *run_id* is one of the 1 in *one_in* runs whose payloads are kept whatever their outcome."""
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:12], 16) % one_in == 0


def attach(span: Span, role: str, data: bytes, content_type: str = "application/json", *,
           redact: bool = True) -> str:
    """Record *data*, redacted, as the *role* payload of *span*; returns the SHA-256 of what is recorded.

    ``redact=False`` is for payloads our own code built from values that cannot hold a secret
    (numbers, hex digests), where the scan would be pure cost.
    """
    data = redaction.redact(role, bytes(data)) if redact else bytes(data)
    attributes = payload_attributes(run_of(span), role, data, content_type)
    span.set_attributes(attributes)
    return attributes[A.blob_attr(role)]


def payload_attributes(run_id: str | None, role: str, data: bytes,
                       content_type: str = "application/json") -> dict[str, Any]:
    """Queue *data* (already redacted) of a step of *run_id* for upload and return the span attributes that
    link it, so a hot path can pass them with its other attributes in one call: each attribute call costs
    the OTel SDK a lock and a validation pass, several µs on the application thread."""
    uploader = _uploader
    if uploader is None:
        digest = sha256_hex(data)
    else:
        held = _held_by(run_id)
        digest = uploader.put(data, content_type) if held is None else uploader.hold(held, data, content_type)
    return {A.blob_attr(role): digest, A.blob_size_attr(role): len(data)}


def run_finished(run_id: str, outcome: str) -> None:
    """The run ended with *outcome*: upload the payloads it held (unless a successful run sampled out)."""
    uploader = _uploader
    if uploader is not None and _sample > 1:
        uploader.release(run_id, keep=outcome != "ok")


def blob_stats() -> BlobStats:
    """Payload upload counters of the running instrumentation (all zero when not instrumented)."""
    uploader = _uploader
    return uploader.stats() if uploader is not None else BlobStats()


def preview(text: str) -> str:
    """A readable, redacted prefix for a span attribute; the full text is in the blob.

    Redacted before it is cut (with some margin), so a secret across the cut is still recognized.
    """
    if len(text) <= _preview_bytes:
        return redaction.redact_text(text)
    return redaction.redact_text(text[:_preview_bytes + _PREVIEW_MARGIN])[:_preview_bytes] + "…"


def cut(redacted: str) -> str:
    """The preview of a text redacted already: cut to the preview length, not scanned again."""
    return redacted if len(redacted) <= _preview_bytes else redacted[:_preview_bytes] + "…"


def preview_of(redacted: bytes) -> str:
    """The preview of a payload :func:`redacted` already: cut, not scanned a second time."""
    if len(redacted) <= _preview_bytes:
        return redacted.decode("utf-8", "replace")
    return redacted[:_preview_bytes].decode("utf-8", "ignore") + "…"  # a character cut in two is left out


def redacted(role: str, data: bytes) -> bytes:
    """*data* as it is recorded as payload *role* (pass it to :func:`attach` with ``redact=False``)."""
    return redaction.redact(role, bytes(data))


def to_json_bytes(value: Any) -> bytes:
    """Canonical JSON bytes (sorted keys) so equal values hash equal."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr).encode()


def redact_headers(headers: Any) -> dict[str, str]:
    """Headers as a dict with every secret value replaced."""
    return {
        str(k).lower(): (REDACTED if str(k).lower() in _SECRET_HEADERS else redaction.redact_text(str(v), "header"))
        for k, v in (headers.items() if hasattr(headers, "items") else headers)
    }
