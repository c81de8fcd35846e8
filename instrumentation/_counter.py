"""A run's running totals — sequence, tokens, errors — for one process or many.

A run starts with :class:`LocalTotals` (a lock and four integers: the fast
path). When its work spreads to another process (a child process, a forked
worker, an MCP server it calls), the owner moves the totals into
:class:`SharedTotals`: a 32-byte file mapped into every process of the run and
updated under ``flock``, so every process draws its sequence numbers from the
same counter and they stay unique and strictly increasing in start order.

``flock`` locks belong to an open file description, not to a thread, so the
threads of one process also serialize on an ordinary lock first; and after
``fork()`` the child reopens the file to get a description (and a lock) of its
own instead of sharing the parent's.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import struct
import tempfile
import threading
import weakref
from typing import Iterator, Protocol

__all__ = ["Totals", "LocalTotals", "SharedTotals", "UnsequencedTotals"]

_log = logging.getLogger(__name__)
_LAYOUT = struct.Struct("<4q")  # seq, input tokens, output tokens, errors
_SEQ = struct.Struct("<q")


class Totals(Protocol):
    """What a run counts; the implementations differ in where the numbers live."""

    def next_seq(self) -> int: ...

    def add(self, input_tokens: int, output_tokens: int, errors: int) -> None: ...

    def snapshot(self) -> tuple[int, int, int, int]: ...


class LocalTotals:
    """One process. Once :meth:`move_to` hands the numbers on, every call forwards there,
    so a thread that fetched this object just before the move still counts in the right place."""

    __slots__ = ("_lock", "_values", "_forward", "__weakref__")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = [0, 0, 0, 0]
        self._forward: Totals | None = None
        _live_local.add(self)

    def next_seq(self) -> int:
        with self._lock:
            if self._forward is None:
                self._values[0] += 1
                return self._values[0]
        return self._forward.next_seq()

    def add(self, input_tokens: int, output_tokens: int, errors: int) -> None:
        with self._lock:
            if self._forward is None:
                self._values[1] += input_tokens
                self._values[2] += output_tokens
                self._values[3] += errors
                return
        self._forward.add(input_tokens, output_tokens, errors)

    def snapshot(self) -> tuple[int, int, int, int]:
        with self._lock:
            if self._forward is None:
                return (self._values[0], self._values[1], self._values[2], self._values[3])
        return self._forward.snapshot()

    def move_to_shared(self, run_id: str) -> "SharedTotals":
        """Create the shared file seeded with these numbers; from now on forward to it."""
        with self._lock:
            if isinstance(self._forward, SharedTotals):
                return self._forward
            shared = SharedTotals.create(run_id, tuple(self._values))  # type: ignore[arg-type]
            self._forward = shared
            return shared

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


class SharedTotals:
    """Many processes: the numbers live in a small mapped file, changed under ``flock``."""

    def __init__(self, path: str, fd: int, *, owner: bool) -> None:
        self.path = path
        self.owner = owner
        self._fd = fd
        self._map = mmap.mmap(fd, _LAYOUT.size)
        self._lock = threading.Lock()
        self._last: tuple[int, ...] = (0, 0, 0, 0)
        self._warned = False
        self._finalizer = _closer(self, self._map, fd)
        _live_shared.add(self)

    @classmethod
    def create(cls, run_id: str, values: tuple[int, int, int, int]) -> "SharedTotals":
        fd, path = tempfile.mkstemp(prefix=f"tracetape-{run_id[:16]}-", suffix=".seq")
        try:
            os.write(fd, _LAYOUT.pack(*values))
            return cls(path, fd, owner=True)
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise

    @classmethod
    def open(cls, path: str) -> "SharedTotals":
        """Join the totals another process created; raises OSError when the file is gone."""
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        try:
            if os.fstat(fd).st_size < _LAYOUT.size:
                raise OSError(f"{path} is not a tracetape sequence file")
            return cls(path, fd, owner=False)
        except BaseException:
            os.close(fd)
            raise

    def next_seq(self) -> int:
        try:
            with self._lock, self._locked(fcntl.LOCK_EX):
                value = _SEQ.unpack_from(self._map, 0)[0] + 1
                _SEQ.pack_into(self._map, 0, value)
            return value
        except (OSError, ValueError) as exc:  # the file is gone or closed: never break the caller
            self._broken(exc)
            return 0

    def add(self, input_tokens: int, output_tokens: int, errors: int) -> None:
        if not (input_tokens or output_tokens or errors):
            return
        try:
            with self._lock, self._locked(fcntl.LOCK_EX):
                seq, total_in, total_out, total_errors = _LAYOUT.unpack_from(self._map, 0)
                _LAYOUT.pack_into(self._map, 0, seq, total_in + input_tokens, total_out + output_tokens,
                                  total_errors + errors)
        except (OSError, ValueError) as exc:
            self._broken(exc)

    def snapshot(self) -> tuple[int, int, int, int]:
        try:
            with self._lock, self._locked(fcntl.LOCK_SH):
                self._last = _LAYOUT.unpack_from(self._map, 0)
        except (OSError, ValueError) as exc:
            self._broken(exc)
        return self._last  # type: ignore[return-value]

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        fcntl.flock(self._fd, mode)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _broken(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            _log.warning("tracetape: shared sequence file %s unusable (%r); events go unsequenced", self.path, exc)

    def unlink(self) -> None:
        """No new process can join after this; processes that joined keep counting."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _after_fork(self) -> None:
        # The inherited descriptor shares its flock with the parent; reopen the
        # same file (by descriptor, in case it was unlinked) for a lock of our own.
        old = self._fd
        try:
            self._fd = os.open(f"/proc/self/fd/{old}", os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            self._fd = os.open(self.path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        os.close(old)
        self._finalizer.detach()
        self._finalizer = _closer(self, self._map, self._fd)
        self._lock = threading.Lock()
        self.owner = False


class UnsequencedTotals:
    """A run joined from where its sequence file cannot be reached (another host):
    events keep the run id but carry seq 0, which readers order by start time."""

    def next_seq(self) -> int:
        return 0

    def add(self, input_tokens: int, output_tokens: int, errors: int) -> None:
        return None

    def snapshot(self) -> tuple[int, int, int, int]:
        return (0, 0, 0, 0)


def _close(mapped: mmap.mmap, fd: int) -> None:
    try:
        mapped.close()
    finally:
        os.close(fd)


def _closer(owner: SharedTotals, mapped: mmap.mmap, fd: int) -> weakref.finalize:
    """Close the mapping when its owner is collected — but not at interpreter exit, where a run
    still being closed by an atexit handler may need it (the OS closes it after us)."""
    finalizer = weakref.finalize(owner, _close, mapped, fd)
    finalizer.atexit = False
    return finalizer


_live_local: "weakref.WeakSet[LocalTotals]" = weakref.WeakSet()
_live_shared: "weakref.WeakSet[SharedTotals]" = weakref.WeakSet()


def after_fork_in_child() -> None:
    """Give every live counter of this (forked) process locks of its own."""
    for local in list(_live_local):
        local._after_fork()
    for shared in list(_live_shared):
        shared._after_fork()
