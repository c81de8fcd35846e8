"""tracetape's one exception hierarchy. Third-party errors (grpc,
clickhouse-connect, chdb) are mapped to these at the boundary, ``from`` the
original, so callers catch one family and still see the cause."""

from __future__ import annotations

__all__ = ["TracetapeError", "MissingExtraError", "StoreError", "StoreUnavailable", "InvalidPayload",
           "RunNotFound", "BlobError", "ConfigError", "TapeError", "DivergenceError", "LiveNetworkBlocked",
           "RecordedToolError", "StoreOverloaded"]


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


class ConfigError(TracetapeError, ValueError):
    """A setting (flag, config file, certificate) that the process cannot start with."""


class TapeError(TracetapeError):
    """A tape file is missing, unreadable, of an unknown format version, or fails its integrity checks."""


class DivergenceError(TracetapeError):
    """A replayed run asked for something the recording does not hold.

    The message names the step, the kind, what was recorded and what was asked
    (as a field-by-field diff) and the nearest recorded candidates; the
    structured record is on ``.divergence`` (a ``tracetape.replay.Divergence``).
    """

    def __init__(self, message: str, divergence: object = None) -> None:
        super().__init__(message)
        self.divergence = divergence


class LiveNetworkBlocked(DivergenceError, ConnectionRefusedError):
    """An outbound connection during replay that the recording cannot serve.

    Also a ``ConnectionRefusedError``, so network libraries treat it as the
    refused connection it is; the replay still reports it as a divergence.
    """


class RecordedToolError(TracetapeError):
    """Replay of a tool call whose recorded error type cannot be rebuilt (not a builtin exception).

    ``error_type`` is the recorded exception class name.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}" if message else error_type)
        self.error_type = error_type


class StoreOverloaded(StoreUnavailable):
    """The collector's writer is behind and its bounded queue is full: retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
