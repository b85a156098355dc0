"""The inline path, ``publish_sync``: receivers run in the publisher's thread.

Sync receivers run right here, in subscription order (:func:`._sync.deliver_sync`).
Async receivers then run to completion where the publisher can wait for
them without deadlocking anything:

- called from a thread that runs an event loop, they are started as tasks
  on that loop and not waited for (the report lists them as ``scheduled``
  until each ends), since blocking that loop would deadlock it;
- inside ``sync_to_async``, on the caller's own outer loop, where its
  loop-bound resources (connections, locks) live;
- otherwise on the bus loop thread.
"""

from __future__ import annotations

import weakref
from collections.abc import Coroutine
from concurrent.futures import CancelledError
from time import perf_counter
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync

from ._async import deliver_async, deliver_off_thread
from ._context import get_handling
from ._interop import outer_loop, quiet_pending_task, running_loop
from ._loop_thread import hold_until_done
from ._report import DeliveryReport
from ._signals import Route
from ._subscription import Subscription
from ._sync import deliver_sync

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["deliver_inline"]

#: Why receivers of a task dropped by a loop closed under it are cancelled.
_LOOP_CLOSED = "its loop was closed before it ended"


def deliver_inline(runtime: Runtime, report: DeliveryReport, route: Route, override: float | None) -> None:
    """Deliver to every receiver of ``route`` (non-empty) from this thread,
    recording into ``report`` and setting its duration."""
    started = perf_counter()
    handling = get_handling()
    chain = () if handling is None else handling[1]
    async_subs = deliver_sync(runtime, report, route.subs, chain, override, started=started)
    if async_subs:
        _run_async_from_sync(runtime, report, tuple(async_subs), chain, override)
        report.duration = perf_counter() - started


def _run_async_from_sync(
    runtime: Runtime,
    report: DeliveryReport,
    subs: tuple[Subscription, ...],
    chain: tuple[Subscription, ...],
    override: float | None,
) -> None:
    running = running_loop()
    if running is not None:
        for sub in subs:
            report._add_scheduled(sub)
        announced = len(report.announcements)  # the sync part announces its own
        unstarted: list[Coroutine[Any, Any, None]] = []  # until it starts: see _dropped
        unstarted.append(_scheduled(runtime, report, subs, chain, override, announced, unstarted))
        task = running.create_task(unstarted[0])
        hold_until_done(task)
        task.add_done_callback(lambda _: _unstarted(runtime, report, subs))
        # A loop closed without cancelling its tasks drops this one
        # unfinished; its receivers are cancelled all the same, when it is
        # collected (or, if it had started, as its coroutine closes: see
        # _scheduled). The report says so, hence no asyncio warning.
        quiet_pending_task(task)
        finalizer = weakref.finalize(task, _dropped, runtime, report, subs, unstarted)
        finalizer.atexit = False  # at exit, nobody reads the report
        return
    if outer_loop() is not None:
        # Inside sync_to_async: run on the caller's own loop.
        async_to_sync(deliver_async)(runtime, report, subs, chain, override, checked=True)
        return
    try:
        runtime.loop_thread.submit(deliver_off_thread(runtime, report, subs, chain, override)).result()
    except CancelledError:
        # shutdown() stopped the bus loop under this publish: the receivers
        # it cut short are cancelled, and the caller still gets its report.
        runtime.outcomes.cancelled_unless_done(report, subs, "the bus loop was stopped")


def _unstarted(
    runtime: Runtime,
    report: DeliveryReport,
    subs: tuple[Subscription, ...],
    why: str = "its loop ended before it started",
) -> None:
    """Receivers scheduled on a loop that ended (cancelling the task)
    before they started are cancelled too, and the report finished."""
    if report.scheduled:
        runtime.outcomes.cancelled_unless_done(report, subs, why)
        report.scheduled = ()


def _dropped(
    runtime: Runtime,
    report: DeliveryReport,
    subs: tuple[Subscription, ...],
    unstarted: list[Coroutine[Any, Any, None]],
) -> None:
    """The task of :func:`_scheduled` was collected unfinished: a loop
    closed without cancelling it dropped it. Its coroutine, if it never
    started, is closed here (collected, it would warn that it was never
    awaited: the report says so instead), and its receivers cancelled."""
    for coro in unstarted:
        coro.close()
    _unstarted(runtime, report, subs, _LOOP_CLOSED)


async def _scheduled(
    runtime: Runtime,
    report: DeliveryReport,
    subs: tuple[Subscription, ...],
    chain: tuple[Subscription, ...],
    override: float | None,
    announced: int,
    unstarted: list[Coroutine[Any, Any, None]],
) -> None:
    # Started: let go of this coroutine, whose frame now refers to its task,
    # which _dropped's finalizer must not keep alive.
    unstarted.clear()
    try:
        await deliver_async(runtime, report, subs, chain, override, checked=True)
    except GeneratorExit:
        # Closed unfinished: its loop was closed without cancelling it.
        _unstarted(runtime, report, subs, _LOOP_CLOSED)
        raise
    finally:
        report.scheduled = ()
    # The publish already ended (and announced what its sync part disabled):
    # the announcements of these receivers are made here, when they end.
    if len(report.announcements) > announced:
        await runtime.announce_disabled_async(report, announced)
