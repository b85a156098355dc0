"""Receiver tasks on a loop: how :func:`~._async.deliver_async` makes them
(:func:`task_maker`), runs each receiver inside one (:func:`counted`) and
waits for them (:class:`Tracker`) without a done callback per task.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any

__all__ = ["EAGER_TASKS", "Tracker", "awaiting", "counted", "task_maker"]

EAGER_TASKS = sys.version_info >= (3, 12)


class Tracker:
    """Counts the receiver tasks of one :func:`deliver_async` that have not
    ended, and wakes the publisher when the count is down to ``until``.

    Each task runs :func:`counted`, which tells the tracker itself as its
    last step, so no done callback is registered per task (asyncio would
    schedule one handle per task per callback, which is most of what
    waiting for tasks costs on 3.11) -- except for the tasks of a loop's
    task factory, which get :meth:`task_done`.
    """

    __slots__ = ("left", "until", "waiter")

    def __init__(self) -> None:
        self.left = 0
        self.until = 0
        self.waiter: asyncio.Future[None] | None = None

    def ended(self) -> None:
        """One task ended: the publisher is woken if that was enough."""
        self.left -= 1
        waiter = self.waiter
        if waiter is not None and self.left <= self.until and not waiter.done():
            waiter.set_result(None)

    def task_done(self, awaitable: Awaitable[Any], task: asyncio.Task[Any]) -> None:
        """The done callback of a task a loop's task factory made (instead of
        :func:`counted`, which such a task may not be able to run: a factory
        that wraps the coroutine awaits it itself). It counts the task down
        only once the task itself ended, which may be after the receiver's
        own end. A receiver whose task was cancelled before it started is
        closed (it would warn that it was never awaited)."""
        if task.cancelled():
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
        self.ended()

    async def wait(self, loop: asyncio.AbstractEventLoop, until: int, when: float | None) -> None:
        """Until at most ``until`` tasks are left running, or the loop's clock
        reaches ``when`` (None: no limit). The caller counts again after: a
        task it stopped waiting for may have ended first."""
        if self.left <= until:
            return
        waiter = self.waiter = loop.create_future()
        self.until = until
        timer = None if when is None else loop.call_at(when, _release, waiter)
        try:
            await waiter
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()


@types.coroutine
def _first_step() -> Generator[None, None, None]:
    yield  # taken by the priming send in deliver_async, never by the task


async def awaiting(awaitable: Awaitable[Any]) -> Any:
    """An awaitable that is not a coroutine, as one (what a task runs)."""
    return await awaitable


async def counted(tracker: Tracker, awaitable: Awaitable[Any]) -> Any:
    """A receiver's task: its awaitable, then the tracker told it ended.

    :func:`~._async.deliver_async` primes this coroutine up to the first ``await``
    before it makes the task, so whatever the task meets -- even a
    cancellation before its first step -- lands inside the ``try`` and the
    tracker is told; a receiver that never got to start is closed (it would
    warn that it was never awaited)."""
    try:
        try:
            await _first_step()
        except BaseException:
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            raise
        return await awaitable
    finally:
        tracker.ended()


def task_maker(loop: asyncio.AbstractEventLoop) -> tuple[Callable[..., asyncio.Task[Any]], bool]:
    """How receiver tasks are made on ``loop``, called as ``make(coro,
    name=...)``, and whether that is the loop's own task factory (whose
    tasks get :meth:`Tracker.task_done`, not :func:`counted`). Without one,
    a Task is made directly, skipping ``loop.create_task``'s Python wrapper,
    and on 3.12+ started eagerly. Tasks are named after their receivers:
    task dumps then say what runs, and on 3.11 a task without a name formats
    one ("Task-N") when made."""
    if loop.get_task_factory() is not None:
        return loop.create_task, True
    if EAGER_TASKS:
        return functools.partial(asyncio.Task, loop=loop, eager_start=True), False  # type: ignore[call-arg,unused-ignore]
    return functools.partial(asyncio.Task, loop=loop), False


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
