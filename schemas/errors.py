"""tracetape's one exception hierarchy. Third-party errors (grpc,
clickhouse-connect, chdb) are mapped to these at the boundary, ``from`` the
original, so callers catch one family and still see the cause."""

from __future__ import annotations

__all__ = ["TracetapeError", "MissingExtraError", "StoreError", "StoreUnavailable", "InvalidPayload",
           "RunNotFound", "BlobError"]


class TracetapeError(Exception):
    """Base of every error tracetape raises on purpose."""


class MissingExtraError(TracetapeError, ImportError):
    """An optional dependency is absent; the message names the extra that brings it."""


class StoreError(TracetapeError):
    """The store refused or failed an operation."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now; retrying later may succeed."""


class InvalidPayload(TracetapeError, ValueError):
    """Input that will never be accepted as sent: retrying it is pointless."""


class RunNotFound(TracetapeError, LookupError):
    """No run with that id (or prefix) in the store."""


class BlobError(TracetapeError):
    """A payload is missing from the store or its bytes do not match their hash."""
