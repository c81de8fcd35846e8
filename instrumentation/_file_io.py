"""File objects for recorded writes and replayed reads.

A write is recorded when its file is closed, with the bytes the file holds
then. C file objects cannot be given a close hook, so a recorded write opens
the file the way ``open()`` does — raw ``FileIO``, a buffer, a text layer —
with a ``FileIO`` subclass at the bottom whose ``close()`` reports back. The
caller gets the standard ``BufferedWriter``/``BufferedRandom``/
``TextIOWrapper`` types, configured as ``open()`` would configure them.

A replayed read gets an in-memory file over the recorded bytes, in the mode
asked (binary, or text with the encoding, errors and newline asked).
"""

from __future__ import annotations

import io
from typing import Any, Callable

__all__ = ["open_tracked", "replayed_file", "plain_mode"]

_MODE_CHARS = frozenset("rwxabt+")


def plain_mode(mode: Any, buffering: int, encoding: Any, errors: Any, newline: Any) -> bool:
    """Whether ``open()`` with these arguments is an ordinary call we can mirror exactly.

    Anything else (odd modes, binary with an encoding, unbuffered text, ...) is
    left to the real ``open()``, to fail or behave exactly as it does.
    """
    if not isinstance(mode, str) or not set(mode) <= _MODE_CHARS or len(set(mode)) != len(mode):
        return False
    if sum(c in mode for c in "rwxa") != 1 or ("b" in mode and "t" in mode):
        return False
    if "b" in mode:
        return encoding is None and errors is None and newline is None and buffering != 1
    return buffering != 0


class _TrackedFileIO(io.FileIO):
    """``FileIO`` that calls its ``on_close`` once, after the file is closed (buffers flushed)."""

    __slots__ = ("on_close",)

    def close(self) -> None:
        on_close: Callable[[], None] | None = getattr(self, "on_close", None)
        self.on_close = None
        try:
            super().close()
        finally:
            if on_close is not None:
                on_close()


def open_tracked(file: Any, mode: str, buffering: int, encoding: Any, errors: Any, newline: Any, closefd: bool,
                 opener: Any, on_close: Callable[[], None]) -> Any:
    """``open(file, mode, ...)`` (a writing *mode*, checked by :func:`plain_mode`) that calls *on_close* on close."""
    raw = _TrackedFileIO(file, mode.replace("b", "").replace("t", ""), closefd, opener=opener)
    try:
        line_buffering = False
        if buffering == 1 or (buffering < 0 and raw.isatty()):
            buffering, line_buffering = -1, True
        if buffering < 0:
            size = getattr(raw, "_blksize", 0)
            buffering = size if size > 1 else io.DEFAULT_BUFFER_SIZE
        raw.on_close = on_close
        if buffering == 0:
            return raw
        buffered = (io.BufferedRandom if "+" in mode else io.BufferedWriter)(raw, buffering)
        if "b" in mode:
            return buffered
        text = io.TextIOWrapper(buffered, encoding, errors, newline, line_buffering)
        text.mode = mode  # type: ignore[misc]  # as open() sets it
        return text
    except BaseException:
        raw.on_close = None
        raw.close()
        raise


class _ReplayedBytes(io.BytesIO):
    """Recorded file content, readable like the file was."""

    def __init__(self, data: bytes, name: Any, mode: str) -> None:
        super().__init__(data)
        self.name = name
        self.mode = mode


def replayed_file(data: bytes, file: Any, mode: str, encoding: Any, errors: Any, newline: Any) -> Any:
    """A read-only file object over *data*, as ``open(file, mode, ...)`` of a reading *mode* would return."""
    binary = _ReplayedBytes(data, file, mode if "b" in mode else mode.replace("t", "") + "b")
    if "b" in mode:
        return binary
    text = io.TextIOWrapper(binary, encoding, errors, newline)
    text.mode = mode  # type: ignore[misc]
    return text
