"""The :class:`EventBus` facade: the three ways to publish, settings,
introspection and lifecycle. Who listens to what -- signals, subscriptions,
routes -- is its base class, :class:`~._registry.Registry`.

The bus owns the history, the guards' bookkeeping, and -- started lazily --
the worker queue, the thread pool and the loop thread. Where each kind of
receiver runs on each path:

================  ============================  ===================================
path              sync receivers                async receivers
================  ============================  ===================================
``publish_sync``  inline, caller's thread,      to completion on the caller's outer
                  in subscription order         loop (inside ``sync_to_async``) or
                                                on the bus loop thread; as tracked
                                                tasks if the caller runs a loop
``await publish`` one pool thread (or asgiref's concurrently as tasks on the
                  thread-sensitive executor),   caller's loop (one alone: in
                  awaited                       the caller's own task)
``publish_nowait`` the drainer pool thread,     on the bus loop thread
                  in order
================  ============================  ===================================
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import CancelledError, Future
from contextlib import AbstractContextManager
from time import perf_counter
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync, sync_to_async
from blinker import Signal

from ._async import deliver_async, deliver_off_thread, deliver_one, hold_until_done
from ._context import HANDLING
from ._describe import describe
from ._events import Event, EventTypeLike, SystemEventType
from ._future import LazyFuture
from ._guards import (
    BUS_SETTINGS,
    Guards,
    check_flag,
    check_overflow,
    check_positive_int,
    check_setting,
    check_sync_executor,
    check_timeout,
)
from ._history import DEFAULT_HISTORY_SIZE, History
from ._lifecycle import register, remaining
from ._outlets import Outlet, offer
from ._registry import Registry
from ._report import DeliveryReport
from ._subscription import Subscription
from ._sync import SyncRun, deliver_sync
from ._threads import LoopThread, ThreadPool
from ._worker import NowaitJob, WorkQueue

__all__ = ["EventBus"]

logger = logging.getLogger("blinker_events")

#: Stands for the signal of an event type nobody subscribed to.
_NO_SIGNAL = Signal()
#: Why receivers of a task dropped by a loop closed under it are cancelled.
_LOOP_CLOSED = "its loop was closed before it ended"


class EventBus(Registry):
    """An isolated event bus.

    Settings (each also has a setter): ``timeout`` per receiver in seconds or
    None; ``propagate_exceptions`` -- raise receiver errors from the publish
    call after every receiver ran; ``failure_threshold`` -- consecutive
    failures before a subscription is disabled; ``history_size`` (0 turns
    the history off); ``max_depth`` of nested publishing; ``queue_size`` and
    ``overflow`` (``"block"``, ``"raise"`` or ``"drop_oldest"``) of the
    worker queue; ``sync_executor`` -- where ``await publish`` runs sync
    receivers: ``"worker"`` (the bus's pool) or ``"thread_sensitive"``
    (asgiref's, which Django's ORM needs).
    """

    def __init__(
        self,
        *,
        timeout: float | None = None,
        propagate_exceptions: bool = False,
        failure_threshold: int = 3,
        history_size: int = DEFAULT_HISTORY_SIZE,
        max_depth: int = 16,
        queue_size: int = 10000,
        overflow: str = "block",
        sync_executor: str = "worker",
        name: str = "blinker_events",
    ) -> None:
        self._timeout = check_timeout(timeout)
        self._propagate = check_flag(propagate_exceptions, "propagate_exceptions")
        threshold = check_positive_int(failure_threshold, "failure_threshold")
        depth = check_positive_int(max_depth, "max_depth")
        history_size = check_positive_int(history_size, "history_size", minimum=0)
        queue_size = check_positive_int(queue_size, "queue_size")
        overflow = check_overflow(overflow)
        self._sync_executor = check_sync_executor(sync_executor)
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        self.name = str.__str__(name)  # a str subclass by its value
        self._enabled = True
        self._init_registry()
        self._guards = Guards(self._lock, threshold, depth, self._propagate)
        self._history = History(history_size)
        self._dispatch_context: Callable[[], AbstractContextManager[Any]] | None = None
        self._pool = ThreadPool(f"{name}-pool")
        self._loop_thread = LoopThread(name)
        self._queue = WorkQueue(self._pool, queue_size, overflow)
        self._outlets: tuple[Outlet, ...] = ()
        register(self)

    # -- publishing ----------------------------------------------------------

    def publish_sync(self, event: Event, *, timeout: float | None = None) -> DeliveryReport:
        """Deliver ``event`` now and return the report.

        Sync receivers run inline in this thread, in subscription order.
        Async receivers then run to completion: on the loop of an enclosing
        ``sync_to_async`` call, else on the bus loop thread. Called from a
        thread that runs an event loop, async receivers are started as tasks
        on that loop instead (the report lists them under ``scheduled``),
        since blocking that loop to wait for them would deadlock it.
        """
        if not isinstance(event, Event):
            raise TypeError(f"event must be an Event, not {type(event).__name__}")
        override = None if timeout is None else check_timeout(timeout)
        report = DeliveryReport(event)
        if not self._enabled:
            return report
        if self._outlets and event._origin is None and offer(self._outlets, event):
            return self._handed_off(report)
        started = perf_counter()
        # _route's common case, inlined: this is the publish hot path.
        signal = self._signals.get(event._key)
        route = None if signal is None else signal.route
        if route is None or route.filtered:
            route = self._route(event)
        if route.subs:
            if route.collect:
                report.results = []
            handling = HANDLING.get()
            chain = () if handling is None else handling[1]
            async_subs = deliver_sync(self, report, route.subs, chain, override, started=started)
            if async_subs:
                self._run_async_from_sync(report, tuple(async_subs), chain, override)
                report.duration = perf_counter() - started
        self._history.record(report)
        if report.disabled:
            self._announce_disabled(report)
        if self._propagate and (report.failed or report.timed_out or report.skipped or report.context_errors):
            report.raise_errors()
        return report

    def _run_async_from_sync(
        self,
        report: DeliveryReport,
        subs: tuple[Subscription, ...],
        chain: tuple[Subscription, ...],
        override: float | None,
    ) -> None:
        running = asyncio._get_running_loop()
        if running is not None:
            for sub in subs:
                report.add_scheduled(sub)
            announced = len(report.announcements)  # the sync part announces its own
            unstarted: list[Coroutine[Any, Any, None]] = []  # until it starts: see _dropped
            unstarted.append(self._scheduled(report, subs, chain, override, announced, unstarted))
            task = running.create_task(unstarted[0])
            hold_until_done(task)
            task.add_done_callback(lambda _: self._unstarted(report, subs))
            # A loop closed without cancelling its tasks drops this one
            # unfinished; its receivers are cancelled all the same, when it
            # is collected (or, if it had started, as its coroutine closes:
            # see _scheduled). The report says so, hence no asyncio warning.
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            finalizer = weakref.finalize(task, self._dropped, report, subs, unstarted)
            finalizer.atexit = False  # at exit, nobody reads the report
            return
        if _outer_loop() is not None:
            # Inside sync_to_async: run on the caller's own loop, where its
            # loop-bound resources (connections, locks) live.
            async_to_sync(deliver_async)(self, report, subs, chain, override, checked=True)
            return
        try:
            self._loop_thread.submit(deliver_off_thread(self, report, subs, chain, override)).result()
        except CancelledError:
            # shutdown() stopped the bus loop under this publish: the
            # receivers it cut short are cancelled, and the caller still
            # gets its report.
            self._guards.cancelled_unless_done(report, subs, "the bus loop was stopped")

    def _unstarted(
        self, report: DeliveryReport, subs: tuple[Subscription, ...], why: str = "its loop ended before it started"
    ) -> None:
        """Receivers scheduled on a loop that ended (cancelling the task)
        before they started are cancelled too, and the report finished."""
        if report.scheduled:
            self._guards.cancelled_unless_done(report, subs, why)
            report.scheduled = ()

    def _dropped(
        self, report: DeliveryReport, subs: tuple[Subscription, ...], unstarted: list[Coroutine[Any, Any, None]]
    ) -> None:
        """The task of :meth:`_scheduled` was collected unfinished: a loop
        closed without cancelling it dropped it. Its coroutine, if it never
        started, is closed here (collected, it would warn that it was never
        awaited: the report says so instead), and its receivers cancelled."""
        for coro in unstarted:
            coro.close()
        self._unstarted(report, subs, _LOOP_CLOSED)

    async def _scheduled(
        self,
        report: DeliveryReport,
        subs: tuple[Subscription, ...],
        chain: tuple[Subscription, ...],
        override: float | None,
        announced: int,
        unstarted: list[Coroutine[Any, Any, None]],
    ) -> None:
        # Started: let go of this coroutine, whose frame now refers to its
        # task, which _dropped's finalizer must not keep alive.
        unstarted.clear()
        try:
            await deliver_async(self, report, subs, chain, override, checked=True)
        except GeneratorExit:
            # Closed unfinished: its loop was closed without cancelling it.
            self._unstarted(report, subs, _LOOP_CLOSED)
            raise
        finally:
            report.scheduled = ()
        if len(report.announcements) > announced:
            await self._announce_disabled_async(report, announced)

    async def publish(self, event: Event, *, timeout: float | None = None) -> DeliveryReport:
        """Deliver ``event`` and return the report once every receiver
        finished or timed out.

        Async receivers run concurrently on this loop, each under its own
        timeout (a single one runs in this task, as with blinker's
        ``send_async``). Sync receivers never run on the loop: they run, in order, on
        a pool thread (or asgiref's thread-sensitive executor, if the bus was
        made with ``sync_executor="thread_sensitive"``), awaited.

        Cancelled, it cancels the async receivers it runs (``report.cancelled``,
        not failures) and records its report in the history before the
        cancellation goes on; sync receivers already on their thread finish,
        and their outcomes join that report.
        """
        if not isinstance(event, Event):
            raise TypeError(f"event must be an Event, not {type(event).__name__}")
        override = None if timeout is None else check_timeout(timeout)
        report = DeliveryReport(event)
        if not self._enabled:
            return report
        if self._outlets and event._origin is None and offer(self._outlets, event):
            return self._handed_off(report)
        started = perf_counter()
        signal = self._signals.get(event._key)  # _route's common case, inlined
        route = None if signal is None else signal.route
        if route is None or route.filtered:
            route = self._route(event)
        if route.subs:
            handling = HANDLING.get()
            chain = () if handling is None else handling[1]
            # The sync half records into a report of its own: it runs on
            # another thread at the same time as the async half.
            sync_report = DeliveryReport(event) if route.sync_subs else None
            if route.collect:
                report.results = []
                if sync_report is not None:
                    sync_report.results = []
            waiter = (
                self._start_sync_run(report, sync_report, route.sync_subs, chain, override)
                if sync_report is not None
                else None
            )
            try:
                if len(route.async_subs) == 1:  # the common case, one coroutine frame less
                    await deliver_one(self, report, route.async_subs[0], chain, override)
                elif route.async_subs:
                    await deliver_async(self, report, route.async_subs, chain, override)
                if waiter is not None:
                    await waiter
            except asyncio.CancelledError:
                self._publish_cancelled(report, sync_report, waiter, started)
                raise
            if waiter is not None:
                report.merge(sync_report)
        report.duration = perf_counter() - started
        self._history.record(report)
        if report.disabled:
            await self._announce_disabled_async(report)
        if self._propagate and (report.failed or report.timed_out or report.skipped or report.context_errors):
            report.raise_errors()
        return report

    def _publish_cancelled(
        self,
        report: DeliveryReport,
        sync_report: DeliveryReport | None,
        waiter: asyncio.Future[None] | None,
        started: float,
    ) -> None:
        """A cancelled ``await publish`` still leaves its history entry. Its
        async receivers were cancelled with it (recorded as such); sync ones
        on a pool thread cannot be, and their outcomes join the entry when
        they finish (see :func:`_resolve`)."""
        report.duration = perf_counter() - started
        if waiter is not None:
            if not waiter.done():
                waiter.cancel()  # (if the cancellation came before it was awaited) see _resolve
            elif not waiter.cancelled():
                report.merge(sync_report)  # finished just as the cancellation came
        self._history.record(report)
        if report.disabled:
            # A failure among the receivers tipped a count before the
            # cancellation: the announcement is still due, in a task of its own.
            task = asyncio.get_running_loop().create_task(self._announce_disabled_async(report))
            hold_until_done(task)

    def _start_sync_run(
        self,
        into: DeliveryReport,
        report: DeliveryReport,
        subs: tuple[Subscription, ...],
        chain: tuple[Subscription, ...],
        override: float | None,
    ) -> asyncio.Future[None]:
        """Start the sync receivers of ``await publish``, recording into
        ``report``; the returned future resolves when they are done. If the
        publish was cancelled meanwhile, ``report`` is merged into ``into``
        (the publish's own report, already in the history) instead."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def done(_: SyncRun) -> None:
            try:
                loop.call_soon_threadsafe(_resolve, waiter, into, report)
            except RuntimeError:  # the publisher's loop is closed; nobody waits
                into.merge(report)

        context = contextvars.copy_context()
        if self._sync_executor == "thread_sensitive":
            run = SyncRun(self, report, subs, chain, override, context, done, movable=False)
            task = loop.create_task(sync_to_async(run.run, thread_sensitive=True)())
            hold_until_done(task)
            # The executor's one thread may still be stuck in an earlier
            # receiver; then this run would not even start, and no deadline
            # would apply to it. Give it up at its first receiver's deadline.
            first = override or subs[0].timeout or self._timeout
            if first is not None:
                loop.call_later(first, run.give_up_unstarted)
        else:
            run = SyncRun(self, report, subs, chain, override, context, done)
            self._pool.submit(run.run)
        return waiter

    def publish_nowait(self, event: Event, *, timeout: float | None = None) -> Future[DeliveryReport]:
        """Queue ``event`` for the worker and return at once.

        The returned future resolves to the report -- or, with propagation
        on, to the exception ``publish_sync`` would have raised. Dispatches
        start in publish order. When the queue is full the ``overflow``
        policy applies; ``"block"`` waits at most the publish's timeout (the
        bus default if not given), and raises :class:`QueueFullError` at once
        on a thread that runs an event loop.
        """
        if not isinstance(event, Event):
            raise TypeError(f"event must be an Event, not {type(event).__name__}")
        override = None if timeout is None else check_timeout(timeout)
        future: Future[DeliveryReport] = LazyFuture()
        if not self._enabled:
            future.set_result(DeliveryReport(event))
            return future
        if self._outlets and event._origin is None and offer(self._outlets, event):
            future.set_result(self._handed_off(DeliveryReport(event)))
            return future
        job = NowaitJob(self, event, override, contextvars.copy_context(), future)
        self._queue.put(job, override or self._timeout)
        return future

    def _finish_job(self, job: NowaitJob, crash: BaseException | None) -> None:
        """Complete a worker job, on whichever thread ended it."""
        report = job.report
        report.duration = perf_counter() - job.started
        outcome: DeliveryReport | BaseException = report if crash is None else crash
        try:
            self._history.record(report)
            if report.disabled:
                self._announce_disabled(report)
            if crash is None and self._propagate and report.errors():
                try:
                    report.raise_errors()
                except Exception as exc:
                    outcome = exc
        finally:
            job.resolve(outcome)

    def _handed_off(self, report: DeliveryReport) -> DeliveryReport:
        report.handed_off = True
        self._history.record(report)
        return report

    # -- outlets -------------------------------------------------------------

    def add_outlet(self, outlet: Outlet) -> None:
        """Offer every local event to ``outlet`` at publish, before any
        receiver runs (see :mod:`blinker_events._outlets`). Bridges to other
        processes call this; an outlet is added once."""
        for name in ("prepare", "send", "close"):
            if not callable(getattr(outlet, name, None)):
                raise TypeError(f"outlet must have a {name}() method")
        if not isinstance(getattr(outlet, "takes_over", None), bool):
            raise TypeError("outlet must have a bool takes_over attribute")
        with self._lock:
            if outlet not in self._outlets:
                self._outlets = (*self._outlets, outlet)

    def remove_outlet(self, outlet: Outlet) -> bool:
        """Stop offering events to ``outlet``; False if it was not added."""
        with self._lock:
            if outlet not in self._outlets:
                return False
            self._outlets = tuple(o for o in self._outlets if o is not outlet)
            return True

    # -- the SUBSCRIBER_DISABLED meta-event ----------------------------------

    def _disabled_events(self, report: DeliveryReport, start: int = 0) -> list[Event]:
        # Never announce from the handling of an announcement: a failing
        # handler of the meta-event cannot start a cascade.
        if report.event.event_type is SystemEventType.SUBSCRIBER_DISABLED:
            return []
        return [Event(SystemEventType.SUBSCRIBER_DISABLED, data, self.name) for data in report.announcements[start:]]

    # Announcing never raises: under propagation a failing handler of the
    # meta-event would otherwise replace the error of the publish that
    # tipped the count. Its failure is logged and recorded like any other.
    def _announce_disabled(self, report: DeliveryReport) -> None:
        for meta in self._disabled_events(report):
            with contextlib.suppress(Exception):
                self.publish_sync(meta)

    async def _announce_disabled_async(self, report: DeliveryReport, start: int = 0) -> None:
        for meta in self._disabled_events(report, start):
            with contextlib.suppress(Exception):
                await self.publish(meta)

    def _keep_until_done(self, task: asyncio.Task[Any], sub: Subscription, event: Event, when: str) -> None:
        """Hold a cancelled receiver task until it ends; log what it raises late."""
        hold_until_done(task)

        def ended(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is not None:
                logger.error("receiver %s raised %s handling %s", sub.name, when, repr(event), exc_info=t.exception())

        task.add_done_callback(ended)

    def set_dispatch_context(self, factory: Callable[[], AbstractContextManager[Any]] | None) -> None:
        """Enter ``factory()`` around every delivery that runs on one of the
        bus's own threads -- the worker queue, the pool that runs the sync
        receivers of ``await publish``, the bus loop -- rather than in the
        publisher's thread or task. Integrations use it to give receivers
        there what the publisher had, e.g. Flask's app context. None: nothing.

        ``factory()`` is called per delivery, on the thread that delivers. If
        it, or entering or leaving what it returns, raises, the publish
        still returns (or resolves) with its report: the error is logged and
        in ``report.context_errors`` (a :class:`DispatchContextError`), raised
        under propagation, and receivers a context that could not be entered
        kept from running are skipped with reason ``"context"``. No receiver's
        failure count changes.
        """
        if factory is not None and not callable(factory):
            raise TypeError(f"factory must be callable or None, not {type(factory).__name__}")
        self._dispatch_context = factory

    @property
    def dispatch_context(self) -> Callable[[], AbstractContextManager[Any]] | None:
        """What :meth:`set_dispatch_context` set, or None."""
        return self._dispatch_context

    # -- settings ------------------------------------------------------------

    def set_timeout(self, seconds: float | None) -> None:
        """Default per-receiver timeout: a positive finite number, or None."""
        self._timeout = check_timeout(seconds, "seconds")

    def set_propagate_exceptions(self, flag: bool) -> None:
        self._propagate = self._guards.propagate = check_flag(flag, "flag")

    def set_failure_threshold(self, n: int) -> None:
        self._guards.threshold = check_positive_int(n, "n")

    def set_history_size(self, n: int) -> None:
        """Keep the last ``n`` publishes (default 1000); 0 turns history off."""
        self._history.resize(check_positive_int(n, "n", minimum=0))

    def set_max_depth(self, n: int) -> None:
        self._guards.max_depth = check_positive_int(n, "n")

    def set_queue_size(self, n: int) -> None:
        """Bound of the worker queue. Shrinking below what is queued drops
        nothing: publishers meet the overflow policy until it drains."""
        self._queue.maxsize = check_positive_int(n, "n")

    def set_overflow(self, policy: str) -> None:
        """``"block"``, ``"raise"`` or ``"drop_oldest"``; see the README."""
        self._queue.overflow = check_overflow(policy)

    def set_sync_executor(self, name: str) -> None:
        """Where ``await publish`` runs sync receivers from now on:
        ``"worker"`` or ``"thread_sensitive"``."""
        self._sync_executor = check_sync_executor(name)

    def configure(self, **settings: Any) -> None:
        """Change several settings at once: any of ``timeout``,
        ``propagate_exceptions``, ``failure_threshold``, ``history_size``,
        ``max_depth``, ``queue_size``, ``overflow`` and ``sync_executor``.
        Every value is checked before any is applied, so a bad one
        (TypeError/ValueError naming it) changes nothing."""
        unknown = sorted(set(settings) - set(BUS_SETTINGS))
        if unknown:
            raise TypeError(f"configure() got unknown setting(s): {', '.join(unknown)}")
        checked = {name: check_setting(name, value) for name, value in settings.items()}
        for name, value in checked.items():
            getattr(self, f"set_{name}")(value)

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @property
    def propagate_exceptions(self) -> bool:
        return self._propagate

    @property
    def failure_threshold(self) -> int:
        return self._guards.threshold

    @property
    def history_size(self) -> int:
        return self._history.size

    @property
    def max_depth(self) -> int:
        return self._guards.max_depth

    @property
    def queue_size(self) -> int:
        return self._queue.maxsize

    @property
    def overflow(self) -> str:
        return self._queue.overflow

    @property
    def sync_executor(self) -> str:
        return self._sync_executor

    # -- introspection -------------------------------------------------------

    def get_history(
        self, event_type: EventTypeLike | None = None, limit: int | None = None, *, source: Any = None
    ) -> list[Event]:
        """Recent events, oldest first; ``limit`` keeps the newest ``limit``."""
        return self._history.events(event_type, limit, source=source)

    def get_delivery_reports(
        self, event_type: EventTypeLike | None = None, limit: int | None = None, *, source: Any = None
    ) -> list[DeliveryReport]:
        """Like :meth:`get_history`, but each entry is the publish's report
        (``report.event`` is the event)."""
        return self._history.reports(event_type, limit, source=source)

    def clear_history(self) -> None:
        self._history.clear()

    def is_enabled(self) -> bool:
        return self._enabled

    def enable(self) -> None:
        self._enabled = True

    def disable(self) -> None:
        """Make publishing a no-op. Subscriptions, queued events and the
        bus's threads are left as they are."""
        self._enabled = False

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring: queue length, dropped and rejected
        events, times the queue moved on from a stalled drainer while a
        publisher waited for room, pool threads, threads stuck in a hung
        receiver now and runs ever moved off one, subscriptions, disabled
        subscriptions."""
        subs = self.get_subscriptions()
        return {
            "queued": len(self._queue),
            "dropped": self._queue.dropped,
            "rejected": self._queue.rejected,
            "handoffs": self._queue.handoffs,
            "pool_threads": self._pool.threads(),
            "stuck_threads": self._pool.stuck,
            "moved_runs": self._pool.moved_runs,
            "subscriptions": len(subs),
            "disabled": sum(1 for s in subs if s.disabled),
            "history": len(self._history.reports()),
        }

    # -- lifecycle -----------------------------------------------------------

    def shutdown(self, timeout: float | None = None) -> int:
        """Deliver everything still queued, then stop the bus's threads.

        ``timeout`` bounds the whole shutdown (None: as long as it takes):
        the queue drains, the outlets flush and the bus loop stops within
        that one deadline, each stage getting what the earlier ones left; a
        stage whose time is up still runs, without waiting. Events still
        queued when the queue's time is up are dropped, counted, logged and
        their futures failed with :class:`QueueFullError`. Returns how many
        were dropped. The bus stays usable: threads start again on demand.
        """
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else perf_counter() + timeout
        dropped = self._queue.join(timeout)
        # Outlets flush while the loop thread (which bridges may run on)
        # still runs, and after the queue drained into them.
        for outlet in self._outlets:
            try:
                outlet.close(remaining(deadline))
            except Exception:
                logger.exception("shutdown: closing outlet %s failed", describe(outlet))
        self._loop_thread.stop(remaining(deadline))
        self._pool.close()
        return dropped

    def __repr__(self) -> str:
        state = "enabled" if self._enabled else "disabled"
        return f"<EventBus {self.name!r} {state}, {len(self._subscriptions)} subscriptions>"


def _resolve(waiter: asyncio.Future[None], into: DeliveryReport, report: DeliveryReport) -> None:
    if waiter.cancelled():  # the publish was cancelled; its entry gets the outcomes late
        into.merge(report)
    elif not waiter.done():
        waiter.set_result(None)


def _outer_loop() -> asyncio.AbstractEventLoop | None:
    """The loop of the ``sync_to_async`` call this thread runs in, if any."""
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    loop: asyncio.AbstractEventLoop | None = getattr(local, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None
