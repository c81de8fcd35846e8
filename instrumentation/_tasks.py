"""Logical task identity, and context that follows work into threads and tasks.

Each unit of concurrent work in a run — the run's own thread, every thread
it starts, every executor job it submits, every asyncio task it creates —
gets a path such as ``0``, ``0.2``, ``0.2.1``: the parent's path plus the
child's creation index within the parent. Creation order is program order in
the parent, so the same code yields the same paths on every run, however the
scheduler interleaves them. Replay matches calls by (task path, position in
the task), which is why async interleavings still line up.

The same patches copy the creating context (OTel span, current run, task
path) into the new thread or task, so spans made there have the right parent
and the right run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import itertools
import threading
from typing import Any, Callable

from ._patches import PatchSet

__all__ = ["TaskSlot", "current_task_path", "current_slot", "child_path", "enter", "new_root", "reset",
           "propagation_patches", "start_detached"]


class TaskSlot:
    __slots__ = ("path", "_children")

    def __init__(self, path: str) -> None:
        self.path = path
        self._children = itertools.count(1)

    def child(self) -> "TaskSlot":
        # next() on itertools.count is atomic under the GIL: no lock needed.
        return TaskSlot(f"{self.path}.{next(self._children)}")


_slot: contextvars.ContextVar[TaskSlot | None] = contextvars.ContextVar("tracetape_task", default=None)


# The caller's task slot (``None`` outside a run's work): bound, for the hot path of clock and random draws.
current_slot: Callable[[], TaskSlot | None] = _slot.get


def current_task_path() -> str:
    slot = _slot.get()
    return slot.path if slot is not None else ""


def child_path() -> str:
    """Take the next child index of the current task (what a new thread would get); ``""`` outside a run."""
    slot = _slot.get()
    return slot.child().path if slot is not None else ""


def enter(path: str) -> contextvars.Token[TaskSlot | None]:
    """Continue task *path* (work handed over from another process) in this context; undo with :func:`reset`."""
    return _slot.set(TaskSlot(path) if path else None)


def new_root() -> contextvars.Token[TaskSlot | None]:
    """Start task numbering afresh (a run's own thread is task ``0``)."""
    return _slot.set(TaskSlot("0"))


def reset(token: contextvars.Token[TaskSlot | None]) -> None:
    try:
        _slot.reset(token)
    except ValueError:
        _slot.set(None)


def _child_context() -> contextvars.Context:
    """A copy of the caller's context in which the task slot is a new child."""
    context = contextvars.copy_context()
    parent = context.get(_slot)
    if parent is not None:
        context.run(_slot.set, parent.child())
    return context


def _thread_start(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def start(self: threading.Thread, *args: Any, **kwargs: Any) -> Any:
        context = _child_context()
        run = self.run
        self.run = functools.partial(context.run, run)  # type: ignore[method-assign]
        return original(self, *args, **kwargs)

    return start


def _executor_submit(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return original(self, functools.partial(_child_context().run, fn), *args, **kwargs)

    return submit


def _create_task(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def create_task(self: Any, coro: Any, *args: Any, context: contextvars.Context | None = None,
                    **kwargs: Any) -> Any:
        if context is None:
            context = _child_context()
        return original(self, coro, *args, context=context, **kwargs)

    return create_task


def propagation_patches() -> PatchSet:
    return PatchSet([
        (threading.Thread, "start", _thread_start(threading.Thread.start)),
        (concurrent.futures.ThreadPoolExecutor, "submit",
         _executor_submit(concurrent.futures.ThreadPoolExecutor.submit)),
        (asyncio.BaseEventLoop, "create_task", _create_task(asyncio.BaseEventLoop.create_task)),
    ])


def start_detached(thread: threading.Thread) -> None:
    """Start one of tracetape's own threads outside any run's task numbering.

    Our workers start lazily, at moments that differ between a recording and
    its replay; taking a child index would shift the paths of user tasks.
    """
    contextvars.Context().run(thread.start)
