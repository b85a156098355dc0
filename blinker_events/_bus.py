"""The :class:`EventBus` facade: the three ways to publish, settings,
introspection and lifecycle, delegating who listens to what to its
:class:`~._registry.Registry`. Every publish is the one pipeline of
:mod:`._runtime` (``begin``, one path -- :mod:`._inline`, :mod:`._on_loop`
or :mod:`._worker` -- then ``finish``), which also says where each kind of
receiver runs on each path. The bus owns its runtime and worker queue.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from enum import Enum
from time import perf_counter
from typing import Any, TypeVar, Unpack, overload

from blinker import ANY, NamedSignal, Signal

from . import _instrument, _streaming, _waiting
from ._bridges import Bridges
from ._bus_state import StateMethods
from ._checks import check_timeout
from ._compat import check_drop_in
from ._events import Event, EventTypeLike, PlainEventType
from ._inline import deliver_inline
from ._interop import LazyFuture
from ._job import NowaitJob
from ._lifecycle import register, remaining
from ._on_loop import deliver_on_loop
from ._outlets import Outlet
from ._registry import Registry
from ._report import DeliveryReport
from ._runtime import Runtime
from ._settings import BusSettings, LiveSettings, default_of
from ._subscription import Subscription
from ._typed import E, Options, R, Receives
from ._worker import WorkQueue

__all__ = ["EventBus"]

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("blinker_events")


class EventBus(StateMethods):
    """An isolated event bus.

    The constructor takes every setting of :class:`~blinker_events.lowlevel.BusSettings` (each also
    a read-only property, a ``set_*`` method, and a key of
    :meth:`configure`), and a ``name`` for its threads and announcements.
    """

    def __init__(
        self,
        *,
        timeout: float | None = default_of("timeout"),
        propagate_exceptions: bool = default_of("propagate_exceptions"),
        failure_threshold: int = default_of("failure_threshold"),
        history_size: int = default_of("history_size"),
        max_depth: int = default_of("max_depth"),
        queue_size: int = default_of("queue_size"),
        overflow: str = default_of("overflow"),
        sync_executor: str = default_of("sync_executor"),
        slow_after: float | None = default_of("slow_after"),
        name: str = "blinker_events",
    ) -> None:
        settings = BusSettings(
            timeout=timeout,
            propagate_exceptions=propagate_exceptions,
            failure_threshold=failure_threshold,
            history_size=history_size,
            max_depth=max_depth,
            queue_size=queue_size,
            overflow=overflow,
            sync_executor=sync_executor,
            slow_after=slow_after,
        )
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        self.name = str.__str__(name)  # a str subclass by its value
        self._registry = Registry(self)
        #: The registry's lock, which guarded drop-in signals take (see
        #: :class:`~._signals.GuardingBus`).
        self._lock = self._registry.lock
        #: The one current settings value; everything reads it at use.
        self._live = LiveSettings(settings)
        #: All the dispatch paths get of this bus (see :mod:`._runtime`).
        self._runtime = Runtime(self.name, self._lock, self._live, self._registry.route, self._registry.signals, self)
        # The bus's own handles on its runtime's parts.
        self._history = self._runtime.history
        self._pool = self._runtime.pool
        self._loop_thread = self._runtime.loop_thread
        self._queue = WorkQueue(self._pool, self._live)
        register(self, self._queue, (self._lock, *self._registry.bridges.locks(), *self._history.locks()))

    # -- publishing ----------------------------------------------------------

    def publish_sync(self, event: Event, *, timeout: float | None = None) -> DeliveryReport:
        """Deliver ``event`` now and return the report.

        Sync receivers run inline in this thread, in subscription order.
        Async receivers then run to completion: on the loop of an enclosing
        ``sync_to_async`` call, else on the bus loop thread. Called from a
        thread that runs an event loop, async receivers are started as tasks
        on that loop instead (the report lists them under ``scheduled``),
        since blocking that loop to wait for them would deadlock it.

        :param event: the :class:`~blinker_events.Event` to deliver.
        :param timeout: this publish's per-receiver timeout, overriding the
            subscriptions' and the bus default; None: theirs.
        :returns: the :class:`~blinker_events.DeliveryReport` of this publish.
        :raises TypeError, ValueError: ``event`` is not an Event, or ``timeout``
            is not None or a positive number of seconds.
        :raises Exception: with ``propagate_exceptions`` on, after every receiver
            ran: the one receiver error, or an :class:`ExceptionGroup` of several.
        """
        runtime = self._runtime
        # Instrumented (see lowlevel.instrument), the hooks' end is called
        # once however the publish ends; uninstrumented, this costs a check
        # (try blocks are free until something raises).
        end = None if runtime.hooks is None else _instrument.start(runtime, event, timeout, queued=False)
        report = None
        try:
            report, override, route = runtime.begin(event, timeout)
            if route is not None:
                if route.subs:
                    deliver_inline(runtime, report, route, override)
                runtime.finish(report)
        except BaseException as exc:
            if end is not None:
                end(report, exc)
            raise
        if end is not None:
            end(report, None)
        return report

    async def publish(self, event: Event, *, timeout: float | None = None) -> DeliveryReport:
        """Deliver ``event`` and return the report once every receiver
        finished or timed out.

        Async receivers run concurrently on this loop, each under its own
        timeout (a single one runs in this task, as with blinker's
        ``send_async`` -- except on the bus's own loop, where it too has a
        task of its own). Sync receivers never run on the loop: they run, in order, on
        a pool thread (or asgiref's thread-sensitive executor, if the bus was
        made with ``sync_executor="thread_sensitive"``), awaited.

        Cancelled, it cancels the async receivers it runs (``report.cancelled``,
        not failures) and records its report in the history before the
        cancellation goes on; sync receivers already on their thread finish,
        and their outcomes join that report.

        :param event: the :class:`~blinker_events.Event` to deliver.
        :param timeout: as for :meth:`publish_sync`.
        :returns: the :class:`~blinker_events.DeliveryReport`, once every receiver
            finished or timed out.
        :raises TypeError, ValueError: as :meth:`publish_sync`.
        :raises Exception: the receivers' errors, as :meth:`publish_sync`, under propagation.
        :raises asyncio.CancelledError: the caller was cancelled; the receivers were too.
        """
        runtime = self._runtime
        end = None if runtime.hooks is None else _instrument.start(runtime, event, timeout, queued=False)
        report = None
        try:
            report, override, route = runtime.begin(event, timeout)
            if route is not None:
                if route.subs:
                    started = perf_counter()
                    try:
                        await deliver_on_loop(runtime, report, route, override)
                    except asyncio.CancelledError:
                        report.duration = perf_counter() - started
                        runtime.finish_cancelled(report)
                        raise
                    report.duration = perf_counter() - started
                # Only announcements need awaiting: without any, the plain
                # finish ends it the same way, and no coroutine is made.
                if report.disabled:
                    await runtime.finish_async(report)
                else:
                    runtime.finish(report)
        except BaseException as exc:
            if end is not None:
                end(report, exc)
            raise
        if end is not None:
            end(report, None)
        return report

    def publish_nowait(self, event: Event, *, timeout: float | None = None) -> Future[DeliveryReport]:
        """Queue ``event`` for the worker and return at once.

        The returned future resolves to the report -- or, with propagation
        on, to the exception ``publish_sync`` would have raised. Dispatches
        start in publish order. When the queue is full the ``overflow``
        policy applies; ``"block"`` waits at most the publish's timeout (the
        bus default if not given), and raises :class:`QueueFullError` at once
        on a thread that runs an event loop.

        :param event: the :class:`~blinker_events.Event` to queue.
        :param timeout: as for :meth:`publish_sync`; also how long ``"block"``
            waits for room.
        :returns: a :class:`concurrent.futures.Future` of the report.
        :raises TypeError, ValueError: ``event`` is not an Event, or a bad ``timeout``.
        :raises QueueFullError: the queue is full and the overflow policy refuses
            the event (``"raise"``, or ``"block"`` past its wait or on a loop thread).
        """
        runtime = self._runtime
        # Instrumented, the hooks end once the event is queued (or refused);
        # its receivers run in the context copied here, which carries what
        # the hooks made current.
        end = None if runtime.hooks is None else _instrument.start(runtime, event, timeout, queued=True)
        report = None
        try:
            report, override, route = runtime.begin(event, timeout, routed=False)
            future: Future[DeliveryReport] = LazyFuture()
            if route is None:
                future.set_result(report)
            else:
                job = NowaitJob(runtime, self._queue, report, override, contextvars.copy_context(), future)
                self._queue.put(job, override or runtime.live.value.timeout)  # no subscription's yet: not routed
        except BaseException as exc:
            if end is not None:
                end(report, exc)
            raise
        if end is not None:
            end(report, None)
        return future

    # -- waiting for events: the functions of :mod:`._waiting`, as methods --
    expect = _waiting.expect
    wait_for = _waiting.wait_for
    stream = _streaming.stream

    # -- outlets -------------------------------------------------------------

    def add_outlet(self, outlet: Outlet) -> None:
        """Offer every local event to ``outlet`` at publish, before any
        receiver runs (see :class:`~blinker_events.lowlevel.Outlet`). Bridges to other
        processes call this; an outlet is added once.

        :param outlet: an object with the :class:`~blinker_events.lowlevel.Outlet` attribute and methods.
        """
        self._runtime.add_outlet(outlet)

    def remove_outlet(self, outlet: Outlet) -> bool:
        """Stop offering events to ``outlet``; False if it was not added.

        :returns: whether ``outlet`` had been added.
        """
        return self._runtime.remove_outlet(outlet)

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

        :param factory: a callable returning a context manager, or None.
        :raises TypeError: ``factory`` is neither callable nor None.
        """
        if factory is not None and not callable(factory):
            raise TypeError(f"factory must be callable or None, not {type(factory).__name__}")
        self._runtime.dispatch_context = factory

    @property
    def dispatch_context(self) -> Callable[[], AbstractContextManager[Any]] | None:
        """What :meth:`set_dispatch_context` set, or None."""
        return self._runtime.dispatch_context

    # -- introspection -------------------------------------------------------

    def is_enabled(self) -> bool:
        """False after :meth:`disable`, until :meth:`enable`."""
        return self._runtime.enabled

    def enable(self) -> None:
        """Make publishing deliver again after :meth:`disable`."""
        self._runtime.enabled = True

    def disable(self) -> None:
        """Make publishing a no-op. Subscriptions, queued events and the
        bus's threads are left as they are."""
        self._runtime.enabled = False

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring: queue length, dropped and rejected
        events, times the queue moved on from a stalled drainer while a
        publisher waited for room, pool threads, threads stuck in a hung
        receiver now and runs ever moved off one, subscriptions, disabled
        subscriptions, slow-receiver warnings given (``slow_after``).

        :returns: a dict with the keys ``queued``, ``dropped``, ``rejected``,
            ``handoffs``, ``pool_threads``, ``stuck_threads``, ``moved_runs``,
            ``subscriptions``, ``disabled``, ``history`` and ``slow_receivers``.
        """
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
            "slow_receivers": self._runtime.slow.count,
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
        deliveries were dropped: those, plus what the outlets dropped at
        their close (a Redis bridge's unwritten buffer) -- an event dropped
        by both counts once for each. The bus stays usable: threads start
        again on demand.

        :raises TypeError, ValueError: ``timeout`` is neither None nor a positive number.
        """
        timeout = check_timeout(timeout)
        deadline = None if timeout is None else perf_counter() + timeout
        dropped = self._queue.join(timeout)
        # Outlets flush while the loop thread (which bridges may run on)
        # still runs, and after the queue drained into them.
        dropped += self._runtime.close_outlets(deadline)
        self._loop_thread.stop(remaining(deadline))
        self._pool.close()
        return dropped

    # -- who listens: the registry's -----------------------------------------

    @overload
    def signal_for(self, event_type: Enum | str | type[Event]) -> NamedSignal: ...

    @overload
    def signal_for(self, event_type: Signal) -> Signal: ...

    def signal_for(self, event_type: EventTypeLike) -> Signal:
        return self._registry.signal_for(event_type)

    # A typed event class: type checkers hold its receivers to taking it.
    @overload
    def subscribe(self, event_type: type[E], callback: None = None, **kw: Unpack[Options]) -> Receives[E, R]: ...
    @overload
    def subscribe(self, event_type: type[E], callback: Callable[[E], Any], **kw: Unpack[Options]) -> Subscription: ...

    @overload
    def subscribe(
        self, event_type: PlainEventType | None, callback: None = None, **kw: Unpack[Options]
    ) -> Callable[[F], F]: ...
    @overload
    def subscribe(
        self, event_type: PlainEventType | None, callback: Callable[..., Any], **kw: Unpack[Options]
    ) -> Subscription: ...

    def subscribe(
        self,
        event_type: EventTypeLike | None,
        callback: Callable[..., Any] | None = None,
        *,
        source: Any = None,
        sender: Any = ANY,
        timeout: float | None = None,
        reentrant: bool = False,
        weak: bool | None = None,
    ) -> Subscription | Callable[[F], F]:
        return self._registry.subscribe(
            event_type, callback, source=source, sender=sender, timeout=timeout, reentrant=reentrant, weak=weak
        )

    def unsubscribe(self, event_type: EventTypeLike | None, callback: Callable[..., Any]) -> int:
        return self._registry.unsubscribe(event_type, callback)

    def unsubscribe_by_source(self, source: Any) -> int:
        return self._registry.unsubscribe_by_source(source)

    def get_subscriptions(
        self, event_type: EventTypeLike | None = None, *, disabled: bool | None = None
    ) -> list[Subscription]:
        return self._registry.get_subscriptions(event_type, disabled=disabled)

    def get_subscriber_count(self, event_type: EventTypeLike | None = None) -> int:
        return self._registry.get_subscriber_count(event_type)

    def guard(self, signal: Signal) -> None:
        check_drop_in(signal)
        self._registry.guard(signal)

    def unguard(self, signal: Signal) -> None:
        check_drop_in(signal)
        self._registry.unguard(signal)

    def bridge(self, signal: Signal, event_type: EventTypeLike | None = None, *, sender: Any = ANY) -> EventTypeLike:
        return self._registry.bridges.bridge(self, signal, event_type, sender)

    def unbridge(self, signal: Signal, *, sender: Any = ANY) -> bool:
        return self._registry.bridges.unbridge(signal, sender)

    # What a guarded drop-in signal asks of its bus (see GuardingBus).
    def _forget_receiver(self, signal: Signal, receiver_id: Any) -> None:
        self._registry.forget_receiver(signal, receiver_id)

    def __enter__(self) -> EventBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Leaving a ``with EventBus() as bus:`` block shuts the bus down
        (:meth:`shutdown`, without a timeout), whether or not it raised."""
        self.shutdown()

    def __repr__(self) -> str:
        state = "enabled" if self._runtime.enabled else "disabled"
        return f"<EventBus {self.name!r} {state}, {len(self._registry.subscriptions)} subscriptions>"


# The delegating methods document what they delegate to, once.
_DELEGATED = "signal_for subscribe unsubscribe unsubscribe_by_source get_subscriptions get_subscriber_count"
for _name in (*_DELEGATED.split(), "guard", "unguard"):
    getattr(EventBus, _name).__doc__ = getattr(Registry, _name).__doc__
EventBus.bridge.__doc__ = Bridges.bridge.__doc__
EventBus.unbridge.__doc__ = Bridges.unbridge.__doc__
