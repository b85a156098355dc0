"""Receiver tasks on a loop: how :func:`~._async.deliver_async` makes them
(:func:`task_maker`), runs each receiver inside one (:func:`counted`),
waits for them (:class:`Tracker`) without a done callback per task, and
settles them (:func:`settle`): cancelled at their deadlines, their outcomes
recorded.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import types
from collections.abc import Awaitable, Callable, Generator
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from ._outcomes import PUBLISH_CANCELLED, TASK_CANCELLED
from ._report import DeliveryReport
from ._subscription import Subscription

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = [
    "EAGER_TASKS",
    "NO_DEADLINE",
    "Running",
    "Tracker",
    "close_unstarted",
    "counted",
    "factory_task",
    "settle",
    "task_maker",
]

EAGER_TASKS = sys.version_info >= (3, 12)
#: The deadline of a receiver without a timeout, on the loop's clock.
NO_DEADLINE = float("inf")


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
            close_unstarted(awaitable)
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


def close_unstarted(awaitable: Awaitable[Any]) -> None:
    """Close a receiver's awaitable that will never be awaited (a coroutine
    would warn that it never was); one without ``close()`` is left alone."""
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


async def _awaiting(awaitable: Awaitable[Any]) -> Any:
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
            close_unstarted(awaitable)
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


def factory_task(make_task: Callable[..., asyncio.Task[Any]], awaitable: Any, name: str) -> asyncio.Task[Any]:
    """A receiver's task made by the loop's task factory (``make_task``, as
    :func:`task_maker` gives it), which is handed the receiver's coroutine
    itself, unstarted: a factory may wrap it in a coroutine of its own that
    awaits it. If the factory raises, the receiver is closed, as one that
    never started."""
    try:
        return make_task(awaitable if type(awaitable) is CoroutineType else _awaiting(awaitable), name=name)
    except BaseException:
        close_unstarted(awaitable)
        raise


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


#: A receiver task of :func:`~._async.deliver_async`: ``(subscription, task,
#: deadline on the loop's clock (inf: none), timeout)``.
Running = tuple[Subscription, "asyncio.Task[Any]", float, "float | None"]


async def settle(
    runtime: Runtime,
    report: DeliveryReport,
    running: list[Running],
    loop: asyncio.AbstractEventLoop,
    tracker: Tracker,
    earliest: float,
) -> None:
    """Wait for the receiver tasks in ``running`` (the earliest of whose
    deadlines is ``earliest``), cancel those past their deadlines, and
    record every outcome in ``report``."""
    timed_out: set[asyncio.Task[Any]] = set()
    cut_short: set[asyncio.Task[Any]] = set()
    try:
        # The common case first: every task ends before the earliest
        # deadline. The tracker counts them down, so no task is looked at
        # until they all ended (or that deadline came).
        if tracker.left and earliest > loop.time():
            if not EAGER_TASKS:
                # Most receivers end in their first step, and one turn of
                # the loop runs the first step of every task made (they were
                # scheduled before this one): cheaper than a future and a
                # timer. (Eager tasks have taken their first step already.)
                await _one_turn()
            if tracker.left:
                await tracker.wait(loop, 0, None if earliest == NO_DEADLINE else earliest)
        if tracker.left:  # (at zero every task is done: see Tracker)
            await _until_deadlines(runtime, report, running, loop, tracker, timed_out)
    except asyncio.CancelledError:
        # The publisher was cancelled: its receivers go with it, reported as
        # cancelled and held until they end, so that whatever they raise while
        # unwinding is logged rather than lost. The rest are recorded below.
        for sub, task, _, _ in running:
            if task.done() or task in timed_out:  # ended meanwhile, or timed out: that outcome stands
                continue
            task.cancel()
            cut_short.add(task)
            runtime.keep_until_done(task, sub, report.event, "while its publish was cancelled")
        _record(runtime, report, running, timed_out, cut_short)
        raise
    _record(runtime, report, running, timed_out, cut_short)


async def _until_deadlines(
    runtime: Runtime,
    report: DeliveryReport,
    running: list[Running],
    loop: asyncio.AbstractEventLoop,
    tracker: Tracker,
    timed_out: set[asyncio.Task[Any]],
) -> None:
    """The general case of :func:`settle`: until every task ended or was
    cancelled at its deadline (adding those to ``timed_out``)."""
    pending = [entry for entry in running if not entry[1].done()]
    while pending:
        now = loop.time()
        for sub, task, deadline, _ in pending:
            if deadline <= now:
                task.cancel()
                timed_out.add(task)
                runtime.keep_until_done(task, sub, report.event, "after its timeout")
        pending = [entry for entry in pending if not entry[1].done() and entry[1] not in timed_out]
        if not pending:
            break
        earliest = min(entry[2] for entry in pending)
        lingering = sum(1 for task in timed_out if not task.done())  # cancelled, still unwinding
        await tracker.wait(loop, lingering, None if earliest == NO_DEADLINE else earliest)
        pending = [entry for entry in pending if not entry[1].done()]


@types.coroutine
def _one_turn() -> Generator[None, None, None]:
    yield  # a bare yield: the task is stepped again on the loop's next turn


def _record(
    runtime: Runtime,
    report: DeliveryReport,
    running: list[Running],
    timed_out: set[asyncio.Task[Any]],
    cut_short: set[asyncio.Task[Any]],
) -> None:
    outcomes = runtime.outcomes
    stopped = timed_out or cut_short  # either set is empty unless a task was cancelled by us
    collect = report.results is not None
    for sub, task, _, timeout in running:
        if stopped and task in timed_out:
            outcomes.timed_out(report, sub, timeout)
        elif stopped and task in cut_short:
            outcomes.cancelled(report, sub, PUBLISH_CANCELLED)
        else:
            try:
                exc = task.exception()
            except asyncio.CancelledError:  # the task was cancelled (by someone else)
                outcomes.cancelled(report, sub, TASK_CANCELLED)
                continue
            if exc is None:
                outcomes.succeeded(report, sub, task.result() if collect else None)
            else:
                outcomes.failed(report, sub, exc)
