"""The :class:`EventBus` facade: subscriptions, settings, introspection and
the three ways to publish.

The bus owns one blinker signal per event type, a lock that guards every
change to who listens (never held while a receiver runs), the history, the
guards' bookkeeping, and -- started lazily -- the worker queue, the thread
pool and the loop thread. Where each kind of receiver runs on each path:

================  ============================  ===================================
path              sync receivers                async receivers
================  ============================  ===================================
``publish_sync``  inline, caller's thread,      to completion on the caller's outer
                  in subscription order         loop (inside ``sync_to_async``) or
                                                on the bus loop thread; as tracked
                                                tasks if the caller runs a loop
``await publish`` one pool thread (or asgiref's concurrently as tasks on the
                  thread-sensitive executor),   caller's loop
                  awaited
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
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from enum import Enum
from time import perf_counter
from typing import Any, TypeVar, overload

from asgiref.sync import SyncToAsync, async_to_sync, sync_to_async
from blinker import ANY, NamedSignal, Signal
from blinker._utilities import make_id

from ._async import deliver_async, deliver_one
from ._context import HANDLING
from ._events import TYPE_REGISTRY, Event, EventTypeLike, SystemEventType, TypeKey, event_type_name, type_key
from ._future import LazyFuture
from ._guards import (
    Guards,
    check_overflow,
    check_positive_int,
    check_timeout,
)
from ._history import DEFAULT_HISTORY_SIZE, History
from ._report import DeliveryReport
from ._signals import Adapters, EventSignal, Route, build_route
from ._subscription import Subscription, same_callback
from ._sync import SyncRun, deliver_sync
from ._threads import LoopThread, ThreadPool
from ._worker import NowaitJob, WorkQueue

__all__ = ["EventBus"]

logger = logging.getLogger("blinker_events")
F = TypeVar("F", bound=Callable[..., Any])

SYNC_EXECUTORS = ("worker", "thread_sensitive")
#: Stands for the signal of an event type nobody subscribed to.
_NO_SIGNAL = Signal()


class EventBus:
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
        self._propagate = _check_flag(propagate_exceptions, "propagate_exceptions")
        threshold = check_positive_int(failure_threshold, "failure_threshold")
        depth = check_positive_int(max_depth, "max_depth")
        history_size = check_positive_int(history_size, "history_size", minimum=0)
        queue_size = check_positive_int(queue_size, "queue_size")
        overflow = check_overflow(overflow)
        self._sync_executor = _check_sync_executor(sync_executor)
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        self.name = name
        self._enabled = True
        # Guards every change to who listens. Reentrant: blinker's connect
        # fires receiver_connected, whose receivers may subscribe in turn.
        self._lock = threading.RLock()
        self._guards = Guards(self._lock, threshold, depth, self._propagate)
        self._history = History(history_size)
        self._signals: dict[TypeKey, EventSignal] = {}
        # blinker Signals used as event types: not ours, so no cached route;
        # the adapters for their plain receivers are this bus's own.
        self._foreign: dict[TypeKey, Signal] = {}
        self._foreign_adapters: dict[TypeKey, Adapters] = {}
        self._bridges: dict[int, tuple[Signal, _Relay]] = {}
        self._wildcards: list[Subscription] = []
        self._wild_route: Route | None = None
        self._subscriptions: dict[int, Subscription] = {}
        self._dead: list[Subscription] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pool = ThreadPool(f"{name}-pool")
        self._loop_thread = LoopThread(name)
        self._queue = WorkQueue(self._pool, queue_size, overflow)

    # -- signals and routes ----------------------------------------------

    @overload
    def signal_for(self, event_type: Enum | str) -> NamedSignal: ...

    @overload
    def signal_for(self, event_type: Signal) -> Signal: ...

    def signal_for(self, event_type: EventTypeLike) -> Signal:
        """The blinker signal of ``event_type`` on this bus, made on first use.

        A receiver connected to it with plain blinker ``connect`` is called
        on publish as ``fn(event.source, event=event)``, with every guard. A
        blinker ``Signal`` used as event type is its own signal.
        """
        key = type_key(event_type)
        signal = self._signal_of(key)
        if signal is not None:
            return signal
        with self._lock:
            signal = self._signal_of(key)
            if signal is None:
                TYPE_REGISTRY.remember(event_type)
                if isinstance(event_type, Signal):
                    signal = self._foreign[key] = event_type
                    self._foreign_adapters[key] = Adapters()
                else:
                    signal = self._signals[key] = EventSignal(event_type_name(event_type), self._lock, event_type)
            return signal

    def _signal_of(self, key: TypeKey) -> Signal | None:
        signal = self._signals.get(key)
        return self._foreign.get(key) if signal is None else signal

    def _route(self, event: Event) -> Route:
        """Who receives ``event``: a cached snapshot, rebuilt after changes."""
        key = event._key
        signal = self._signals.get(key)
        if signal is not None:
            route = signal.route
            if route is None:
                with self._lock:
                    route = signal.route = self._build_route(key)
        elif key in self._foreign or isinstance(event._event_type, Signal):
            foreign = self.signal_for(event._event_type)
            if getattr(foreign, "guarded_by", None) is self:
                # A drop-in Signal this bus guards drops the cache on change.
                route = foreign.route  # type: ignore[attr-defined]
                if route is None:
                    with self._lock:
                        route = foreign.route = self._build_route(key)  # type: ignore[attr-defined]
            else:
                # Any other blinker signal tells us of no change, so its
                # route is rebuilt on every publish.
                with self._lock:
                    route = self._build_route(key)
        else:
            route = self._wild_route
            if route is None:
                with self._lock:
                    route = self._wild_route = self._build_route(key)
        return route.for_source(event._source) if route.filtered else route

    # -- signals the bus does not own -------------------------------------

    def guard(self, signal: Signal) -> None:
        """Send a drop-in :class:`blinker_events.Signal` through this bus
        (what ``signal.guard(bus)`` does); a signal has one guarding bus."""
        from ._compat import Signal as DropIn

        if not isinstance(signal, DropIn):
            raise TypeError(
                "signal must be a blinker_events.Signal to be guarded; bridge() a plain blinker signal instead"
            )
        previous = signal.guarded_by
        if previous is not None and previous is not self:
            previous.unguard(signal)
        self.signal_for(signal)
        with self._lock:
            signal.guarded_by = self
            signal.route = None

    def unguard(self, signal: Signal) -> None:
        """Stop guarding a drop-in signal; its ``send`` is blinker's again."""
        with self._lock:
            if getattr(signal, "guarded_by", None) is self:
                signal.guarded_by = None  # type: ignore[attr-defined]
                signal.route = None  # type: ignore[attr-defined]

    def bridge(self, signal: Signal, event_type: EventTypeLike | None = None) -> EventTypeLike:
        """Relay every send of a blinker signal you do not own to this bus.

        Each ``signal.send(sender, **kwargs)`` becomes
        ``Event(event_type, kwargs, sender)`` published with every guard;
        ``event_type`` defaults to the signal's name. The relay never raises
        into the sender's call (failures are logged and in the history), and
        holds nothing of the sender. It is a sync receiver: a ``send_async``
        of the signal must pass ``_sync_wrapper`` as blinker requires for any
        sync receiver. Returns the event type to subscribe to.
        """
        if not isinstance(signal, Signal):
            raise TypeError(f"signal must be a blinker Signal, not {type(signal).__name__}")
        if event_type is None:
            name = getattr(signal, "name", None)
            if not isinstance(name, str):
                raise ValueError("event_type: an unnamed signal needs one to be bridged")
            event_type = name
        else:
            type_key(event_type)
        with self._lock:
            if id(signal) in self._bridges:
                raise ValueError(f"signal {signal!r} is already bridged to this bus")
            relay = _Relay(self, event_type)
            self._bridges[id(signal)] = (signal, relay)
            signal.connect(relay, weak=False)
        return event_type

    def unbridge(self, signal: Signal) -> bool:
        """Remove the relay :meth:`bridge` connected; False if there was none."""
        with self._lock:
            found = self._bridges.pop(id(signal), None)
        if found is None:
            return False
        found[0].disconnect(found[1])
        return True

    def _build_route(self, key: TypeKey) -> Route:
        """The route of the event type filed under ``key``; lock held."""
        signal = self._signals.get(key)
        if signal is not None:
            return build_route(signal, signal.adapters, signal.event_type, self._wildcards, self)
        foreign = self._foreign.get(key)
        if foreign is not None:
            return build_route(foreign, self._foreign_adapters[key], foreign, self._wildcards, self)
        return build_route(_NO_SIGNAL, Adapters(), None, self._wildcards, self)

    def _invalidate_routes(self) -> None:
        self._wild_route = None
        for signal in self._signals.values():
            signal.route = None

    # -- subscribing ---------------------------------------------------------

    @overload
    def subscribe(
        self,
        event_type: EventTypeLike | None,
        callback: None = None,
        *,
        source: Any = None,
        sender: Any = ANY,
        timeout: float | None = None,
        reentrant: bool = False,
        weak: bool | None = None,
    ) -> Callable[[F], F]: ...

    @overload
    def subscribe(
        self,
        event_type: EventTypeLike | None,
        callback: Callable[..., Any],
        *,
        source: Any = None,
        sender: Any = ANY,
        timeout: float | None = None,
        reentrant: bool = False,
        weak: bool | None = None,
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
        """Call ``callback(event)`` for each event of ``event_type`` (every
        event type, including later ones, when None).

        Returns the :class:`Subscription`; without ``callback``, a decorator
        that subscribes the function and returns it unchanged. ``source`` tags
        the subscription with its owner for :meth:`unsubscribe_by_source` (it
        does not filter events); ``sender`` delivers only events whose
        ``source`` is that object. ``timeout`` overrides the bus's default for
        this receiver. ``reentrant=True`` lets the receiver be re-entered by
        events its own handling caused, up to ``max_depth``. Bound methods
        are held weakly (the subscription ends when the object is
        collected); anything else strongly, unless ``weak`` says otherwise.
        Subscribing the same callback with the same ``source`` and
        ``sender`` again returns the existing subscription.
        """
        if event_type is not None:
            type_key(event_type)
        timeout = check_timeout(timeout)
        reentrant = _check_flag(reentrant, "reentrant")
        if weak is not None:
            weak = _check_flag(weak, "weak")
        if callback is None:

            def decorator(fn: F) -> F:
                if not callable(fn):
                    raise TypeError(f"callback must be callable, not {type(fn).__name__}")
                self.subscribe(
                    event_type, fn, source=source, sender=sender, timeout=timeout, reentrant=reentrant, weak=weak
                )
                return fn

            return decorator
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        sub = Subscription(
            self,
            event_type,
            callback,
            source=source,
            sender=sender,
            timeout=timeout,
            reentrant=reentrant,
            weak=weak,
        )
        with self._lock:
            self._sweep()
            existing = self._find(event_type, callback, source, sender, timeout, reentrant)
            if existing is not None:
                return existing
            self._subscriptions[sub.id] = sub
            if event_type is None:
                self._wildcards.append(sub)
                self._invalidate_routes()
            else:
                self.signal_for(event_type).connect(sub, sender=sender, weak=False)
        return sub

    def _find(
        self,
        event_type: EventTypeLike | None,
        callback: Callable[..., Any],
        source: Any,
        sender: Any,
        timeout: float | None,
        reentrant: bool,
    ) -> Subscription | None:
        key = None if event_type is None else type_key(event_type)
        for sub in self._subscriptions.values():
            if (
                sub.active
                and (None if sub.event_type is None else type_key(sub.event_type)) == key
                and same_callback(sub.callback, callback)
                and sub.source == source
                and (sub.sender is sender or make_id(sub.sender) == make_id(sender))
                and sub.timeout == timeout
                and sub.reentrant == reentrant
            ):
                return sub
        return None

    def unsubscribe(self, event_type: EventTypeLike | None, callback: Callable[..., Any]) -> int:
        """Remove every subscription of ``callback`` to ``event_type`` (None:
        its catch-all subscriptions), including a receiver connected to the
        type's signal with plain blinker ``connect``. Returns how many."""
        key = None if event_type is None else type_key(event_type)
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self._lock:
            matches = [
                sub
                for sub in self._subscriptions.values()
                if (None if sub.event_type is None else type_key(sub.event_type)) == key
                and same_callback(sub.callback, callback)
            ]
            removed = self._remove_subscriptions(matches)
            signal = None if key is None else self._signal_of(key)
            if signal is not None and make_id(callback) in signal.receivers:
                signal.disconnect(callback)
                removed += 1
        return removed

    def unsubscribe_by_source(self, source: Any) -> int:
        """Remove every subscription tagged with ``source``; returns how many.
        ``None`` is refused: it is the tag of every untagged subscription."""
        if source is None:
            raise ValueError("source must not be None: untagged subscriptions have no owner to remove them by")
        with self._lock:
            return self._remove_subscriptions([s for s in self._subscriptions.values() if s.source == source])

    def _remove_subscriptions(self, subs: list[Subscription]) -> int:
        removed = 0
        with self._lock:
            for sub in subs:
                if not sub.active and sub.id not in self._subscriptions:
                    continue
                sub.active = False
                self._subscriptions.pop(sub.id, None)
                removed += 1
                if sub.event_type is None:
                    self._wildcards.remove(sub)
                    self._invalidate_routes()
                else:
                    signal = self._signal_of(type_key(sub.event_type))
                    target = sub.callback if sub.plain else sub
                    if signal is not None and target is not None:
                        signal.disconnect(target)
        return removed

    def _note_dead(self, sub: Subscription) -> None:
        # From a weakref callback: no lock here (see Subscription._weak_ref).
        self._dead.append(sub)
        self._wild_route = None
        if sub.event_type is not None:
            signal = self._signals.get(type_key(sub.event_type))
            if signal is not None:
                signal.route = None

    def _sweep(self) -> None:
        """Detach subscriptions whose weakly held receiver was collected."""
        if self._dead:
            with self._lock:
                dead = []
                while self._dead:  # pop, not swap: a GC callback may append meanwhile
                    dead.append(self._dead.pop())
                self._remove_subscriptions(dead)

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
        if self._propagate and (report.failed or report.timed_out or report.skipped):
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
            task = running.create_task(self._scheduled(report, subs, chain, override, announced))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if _outer_loop() is not None:
            # Inside sync_to_async: run on the caller's own loop, where its
            # loop-bound resources (connections, locks) live.
            async_to_sync(deliver_async)(self, report, subs, chain, override, checked=True)
            return
        try:
            self._loop_thread.submit(deliver_async(self, report, subs, chain, override, checked=True)).result()
        except CancelledError:
            # shutdown() stopped the bus loop under this publish: the
            # receivers it cut short are failures, and the caller still
            # gets its report.
            for sub in subs:
                if not report.has_outcome(sub):
                    self._guards.failed(report, sub, CancelledError("the bus loop was stopped"))

    async def _scheduled(
        self,
        report: DeliveryReport,
        subs: tuple[Subscription, ...],
        chain: tuple[Subscription, ...],
        override: float | None,
        announced: int,
    ) -> None:
        try:
            await deliver_async(self, report, subs, chain, override, checked=True)
        finally:
            report.scheduled = ()
        if len(report.announcements) > announced:
            await self._announce_disabled_async(report, announced)

    async def publish(self, event: Event, *, timeout: float | None = None) -> DeliveryReport:
        """Deliver ``event`` and return the report once every receiver
        finished or timed out.

        Async receivers run concurrently on this loop, each under its own
        timeout. Sync receivers never run on the loop: they run, in order, on
        a pool thread (or asgiref's thread-sensitive executor, if the bus was
        made with ``sync_executor="thread_sensitive"``), awaited.
        """
        if not isinstance(event, Event):
            raise TypeError(f"event must be an Event, not {type(event).__name__}")
        override = None if timeout is None else check_timeout(timeout)
        report = DeliveryReport(event)
        if not self._enabled:
            return report
        started = perf_counter()
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
                self._start_sync_run(sync_report, route.sync_subs, chain, override) if sync_report is not None else None
            )
            if len(route.async_subs) == 1:  # the common case, one coroutine frame less
                await deliver_one(self, report, route.async_subs[0], chain, override)
            elif route.async_subs:
                await deliver_async(self, report, route.async_subs, chain, override)
            if waiter is not None:
                await waiter
                report.merge(sync_report)
        report.duration = perf_counter() - started
        self._history.record(report)
        if report.disabled:
            await self._announce_disabled_async(report)
        if self._propagate and (report.failed or report.timed_out or report.skipped):
            report.raise_errors()
        return report

    def _start_sync_run(
        self,
        report: DeliveryReport,
        subs: tuple[Subscription, ...],
        chain: tuple[Subscription, ...],
        override: float | None,
    ) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def done(_: SyncRun) -> None:
            # RuntimeError: the publisher's loop is closed; nobody waits.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, waiter)

        context = contextvars.copy_context()
        if self._sync_executor == "thread_sensitive":
            run = SyncRun(self, report, subs, chain, override, context, done, movable=False)
            task = loop.create_task(sync_to_async(run.run, thread_sensitive=True)())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
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
        self._tasks.add(task)

        def ended(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("receiver %s raised %s handling %r", sub.name, when, event, exc_info=t.exception())

        task.add_done_callback(ended)

    # -- settings ------------------------------------------------------------

    def set_timeout(self, seconds: float | None) -> None:
        """Default per-receiver timeout: a positive finite number, or None."""
        self._timeout = check_timeout(seconds, "seconds")

    def set_propagate_exceptions(self, flag: bool) -> None:
        self._propagate = self._guards.propagate = _check_flag(flag, "flag")

    def set_failure_threshold(self, n: int) -> None:
        self._guards.threshold = check_positive_int(n, "n")

    def set_history_size(self, n: int) -> None:
        """Keep the last ``n`` publishes (default 1000); 0 turns history off."""
        self._history.resize(check_positive_int(n, "n", minimum=0))

    def set_max_depth(self, n: int) -> None:
        self._guards.max_depth = check_positive_int(n, "n")

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

    # -- introspection -------------------------------------------------------

    def get_subscriptions(
        self, event_type: EventTypeLike | None = None, *, disabled: bool | None = None
    ) -> list[Subscription]:
        """Active subscriptions, in delivery order: to ``event_type`` (and
        catch-alls) when given, else all. ``disabled`` filters by state."""
        self._sweep()
        if event_type is None:
            with self._lock:
                subs = sorted(self._subscriptions.values(), key=lambda s: s.seq)
        else:
            with self._lock:
                subs = list(self._build_route(type_key(event_type)).subs)
        subs = [s for s in subs if s.active and s.callback is not None]
        return subs if disabled is None else [s for s in subs if s.disabled is disabled]

    def get_subscriber_count(self, event_type: EventTypeLike | None = None) -> int:
        """How many receivers an event of ``event_type`` reaches (catch-alls
        and plain blinker receivers included), or, for None, how many
        subscriptions the bus holds in all."""
        return len(self.get_subscriptions(event_type))

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
        events, pool threads, threads stuck in a hung receiver now and runs
        ever moved off one, subscriptions, disabled subscriptions."""
        subs = self.get_subscriptions()
        return {
            "queued": len(self._queue),
            "dropped": self._queue.dropped,
            "rejected": self._queue.rejected,
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

        Waits up to ``timeout`` seconds (None: as long as it takes) for the
        queue to drain; events still queued after that are dropped, counted,
        logged and their futures failed with :class:`QueueFullError`. Returns
        how many were dropped. The bus stays usable: threads start again on
        demand.
        """
        timeout = check_timeout(timeout)
        dropped = self._queue.join(timeout)
        self._loop_thread.stop(timeout)
        self._pool.close()
        return dropped

    def __repr__(self) -> str:
        state = "enabled" if self._enabled else "disabled"
        return f"<EventBus {self.name!r} {state}, {len(self._subscriptions)} subscriptions>"


class _Relay:
    """The receiver :meth:`EventBus.bridge` connects to a foreign signal."""

    __slots__ = ("bus", "event_type")

    def __init__(self, bus: EventBus, event_type: EventTypeLike) -> None:
        self.bus = bus
        self.event_type = event_type

    def __call__(self, sender: Any, /, **kwargs: Any) -> None:
        try:
            self.bus.publish_sync(Event(self.event_type, kwargs, sender))
        except Exception:  # the sender's call must not fail because of us
            logger.exception("bridge: relaying a send of %s failed", event_type_name(self.event_type))

    def __repr__(self) -> str:
        return f"<bridge to {self.bus.name!r} as {event_type_name(self.event_type)}>"


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _outer_loop() -> asyncio.AbstractEventLoop | None:
    """The loop of the ``sync_to_async`` call this thread runs in, if any."""
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    loop: asyncio.AbstractEventLoop | None = getattr(local, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def _check_sync_executor(value: Any) -> str:
    if value not in SYNC_EXECUTORS:
        raise ValueError(f"sync_executor must be one of {', '.join(map(repr, SYNC_EXECUTORS))}, not {value!r}")
    return str(value)
