"""The loop path, ``await publish``: receivers run on the publisher's loop.

Async receivers run concurrently on this loop, each under its own timeout
(a single one in the publisher's own task, as with blinker's
``send_async``; see :mod:`._async`). Sync receivers never run on the loop:
they run, in order, on a pool thread -- or asgiref's thread-sensitive
executor, with ``sync_executor="thread_sensitive"`` -- at the same time,
recording into a report of their own that is merged when both are done.

Cancelled, the publish cancels the async receivers it runs; sync receivers
already on their thread finish, and their outcomes join the report, which
is already in the history, when they do.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Coroutine
from threading import get_ident
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

from ._async import deliver_async, deliver_one
from ._context import get_handling
from ._loop_thread import hold_until_done
from ._report import DeliveryReport
from ._signals import Route
from ._subscription import Subscription
from ._sync import SyncRun

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["deliver_on_loop"]


def deliver_on_loop(runtime: Runtime, report: DeliveryReport, route: Route, override: float | None) -> Awaitable[None]:
    """What to await to deliver to every receiver of ``route`` (non-empty),
    recording into ``report``. With async receivers only, that is their own
    delivery, with no coroutine of this path around it (the A1 hot path).
    The caller measures the duration and, if it is cancelled, ends the
    publish (:meth:`Runtime.finish_cancelled`) before the cancellation goes
    on."""
    handling = get_handling()
    chain = () if handling is None else handling[1]
    # The async half, made (not started) here, where the one rule of this
    # path is: a single receiver runs in the publisher's own task (as with
    # blinker's ``send_async``), except on the bus loop. A publisher there --
    # a Redis bridge's reader, a receiver that publishes on -- is cancelled
    # when the loop stops, and must not wait for a receiver that ignores its
    # cancellation, so every receiver there gets a task of its own, as on the
    # loop's other paths (docs/timeouts.md).
    subs = route.async_subs
    if len(subs) == 1 and get_ident() != runtime.loop_thread.ident:
        async_half: Coroutine[Any, Any, None] | None = deliver_one(runtime, report, subs[0], chain, override)
    elif subs:
        async_half = deliver_async(runtime, report, subs, chain, override, own_tasks=True)
    else:
        async_half = None
    if route.sync_subs:
        return _with_sync_half(runtime, report, route, chain, override, async_half)
    assert async_half is not None  # the route is not empty
    return async_half


async def _with_sync_half(
    runtime: Runtime,
    report: DeliveryReport,
    route: Route,
    chain: tuple[Subscription, ...],
    override: float | None,
    async_half: Coroutine[Any, Any, None] | None,
) -> None:
    # The sync half records into a report of its own: it runs on another
    # thread at the same time as the async half.
    sync_report = DeliveryReport(report.event)
    if report.results is not None:  # collecting (see Runtime.begin): both halves do
        sync_report.results = []
    try:
        waiter = _start_sync_run(runtime, report, sync_report, route.sync_subs, chain, override)
    except BaseException:
        if async_half is not None:
            async_half.close()  # never started: no "never awaited" warning
        raise
    try:
        if async_half is not None:
            await async_half
        await waiter
    except asyncio.CancelledError:
        if not waiter.done():
            waiter.cancel()  # (if the cancellation came before it was awaited) see _resolve
        elif not waiter.cancelled():
            report._merge(sync_report)  # finished just as the cancellation came
        raise
    report._merge(sync_report)


def _start_sync_run(
    runtime: Runtime,
    into: DeliveryReport,
    report: DeliveryReport,
    subs: tuple[Subscription, ...],
    chain: tuple[Subscription, ...],
    override: float | None,
) -> asyncio.Future[None]:
    """Start the sync receivers, recording into ``report``; the returned
    future resolves when they are done. If the publish was cancelled
    meanwhile, ``report`` is merged into ``into`` (the publish's own
    report, already in the history) instead."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def done(_: SyncRun) -> None:
        try:
            loop.call_soon_threadsafe(_resolve, waiter, into, report)
        except RuntimeError:  # the publisher's loop is closed; nobody waits
            into._merge(report)

    context = contextvars.copy_context()
    if runtime.live.value.sync_executor == "thread_sensitive":
        run = SyncRun(runtime, report, subs, chain, override, context, done, movable=False)
        hold_until_done(loop.create_task(sync_to_async(run.run, thread_sensitive=True)()))
        # The executor's one thread may still be stuck in an earlier
        # receiver; then this run would not even start, and no deadline
        # would apply to it. Give it up at its first receiver's deadline.
        first = runtime.timeout_for(subs[0], override)
        if first is not None:
            loop.call_later(first, run.give_up_unstarted)
    else:
        run = SyncRun(runtime, report, subs, chain, override, context, done)
        runtime.pool.submit(run.run)
    return waiter


def _resolve(waiter: asyncio.Future[None], into: DeliveryReport, report: DeliveryReport) -> None:
    if waiter.cancelled():  # the publish was cancelled; its entry gets the outcomes late
        into._merge(report)
    elif not waiter.done():
        waiter.set_result(None)
