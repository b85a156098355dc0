"""The instrumented publishes: the facade's three, with a bus's
:class:`~._hooks.Hooks` around them.

A bus holds at most one :class:`Hooks` object, in one slot of its runtime
(``runtime.hooks``; set with :func:`blinker_events.lowlevel.instrument`).
Every path reads the slot once per publish or delivery, and while it is
None nothing else happens: an uninstrumented bus pays one attribute read
and one comparison per publish (and per receiver), nothing more.

With hooks set, the three publishes go through this module's twins of the
facade's methods, which differ from them only in calling
:meth:`Hooks.publish` first (in the publisher's thread or task, before the
outlets see the event, so that a bridge can carry what it made current)
and its returned ``end`` last, once, however the publish ends. What a hook
makes current there (a context variable: a span) reaches every receiver,
wherever it runs: the paths already copy the publisher's context to the
pool threads, the worker, the bus loop and the tasks they start.

Around each receiver the paths call :meth:`Hooks.receiver`, which returns
what to call instead of the receiver (a wrapper that runs in the receiver's
own thread or task, so a span it makes current is current while the
receiver runs, and in what the receiver publishes). Receivers the bus does
not run -- disabled, stopped by the cycle guard -- are told to
:meth:`Hooks.skipped`.
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import Future
from time import perf_counter
from typing import TYPE_CHECKING

from ._checks import check_timeout
from ._events import Event
from ._hooks import PublishEnd
from ._inline import deliver_inline
from ._interop import LazyFuture
from ._on_loop import deliver_on_loop
from ._report import DeliveryReport
from ._worker import NowaitJob, WorkQueue

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["publish", "publish_nowait", "publish_sync"]


def _check(event: Event, timeout: float | None) -> None:
    # Runtime.begin checks these too; checked first here so that a refused
    # publish leaves no trace either.
    if not isinstance(event, Event):
        raise TypeError(f"event must be an Event, not {type(event).__name__}")
    if timeout is not None:
        check_timeout(timeout)


def _untraced(report: DeliveryReport | None, error: BaseException | None) -> None:
    """The end of a publish whose hooks were taken off as it began."""


def _start(runtime: Runtime, event: Event, queued: bool) -> PublishEnd:
    # The facade saw the slot set; it is read again here, once: hooks taken
    # off in between make this an untraced publish, not an error.
    hooks = runtime.hooks
    return _untraced if hooks is None else hooks.publish(event, queued)


def publish_sync(runtime: Runtime, event: Event, timeout: float | None) -> DeliveryReport:
    """``EventBus.publish_sync`` with ``hooks`` around it."""
    _check(event, timeout)
    end = _start(runtime, event, False)
    report: DeliveryReport | None = None
    error: BaseException | None = None
    try:
        report, override, route = runtime.begin(event, timeout)
        if route is None:
            return report
        if route.subs:
            deliver_inline(runtime, report, route, override)
        return runtime.finish(report)
    except BaseException as exc:
        error = exc
        raise
    finally:
        end(report, error)


async def publish(runtime: Runtime, event: Event, timeout: float | None) -> DeliveryReport:
    """``await EventBus.publish`` with ``hooks`` around it."""
    _check(event, timeout)
    end = _start(runtime, event, False)
    report: DeliveryReport | None = None
    error: BaseException | None = None
    try:
        report, override, route = runtime.begin(event, timeout)
        if route is None:
            return report
        if route.subs:
            started = perf_counter()
            try:
                await deliver_on_loop(runtime, report, route, override)
            except asyncio.CancelledError:
                report.duration = perf_counter() - started
                runtime.finish_cancelled(report)
                raise
            report.duration = perf_counter() - started
        return await runtime.finish_async(report) if report.disabled else runtime.finish(report)
    except BaseException as exc:
        error = exc
        raise
    finally:
        end(report, error)


def publish_nowait(runtime: Runtime, queue: WorkQueue, event: Event, timeout: float | None) -> Future[DeliveryReport]:
    """``EventBus.publish_nowait`` with ``hooks`` around it: they end when
    the event is queued (or refused); its receivers run later, in the
    context copied here, so what the hooks made current reaches them."""
    _check(event, timeout)
    end = _start(runtime, event, True)
    report: DeliveryReport | None = None
    error: BaseException | None = None
    try:
        report, override, route = runtime.begin(event, timeout, routed=False)
        future: Future[DeliveryReport] = LazyFuture()
        if route is None:
            future.set_result(report)
            return future
        job = NowaitJob(runtime, queue, report, override, contextvars.copy_context(), future)
        queue.put(job, override or runtime.live.value.timeout)
        return future
    except BaseException as exc:
        error = exc
        raise
    finally:
        end(report, error)
