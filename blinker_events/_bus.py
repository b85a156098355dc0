"""The :class:`EventBus` facade: the three ways to publish, settings,
introspection and lifecycle. Who listens to what -- signals, subscriptions,
routes -- is its base class, :class:`~._registry.Registry`.

Every publish is the one pipeline: :meth:`Runtime.begin
<._runtime.Runtime.begin>` (checks, report, enabled, outlets, route), then
one path -- :mod:`._inline`, :mod:`._on_loop` or :mod:`._worker` -- then
:meth:`Runtime.finish <._runtime.Runtime.finish>` (history, disable
announcements, propagation). The bus owns its runtime (history, outcome
recorder, settings, and -- started lazily -- the thread pool and the loop
thread) and the worker queue. Where each kind of receiver runs on each path:

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

import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from time import perf_counter
from typing import Any

from ._checks import check_timeout
from ._describe import describe
from ._events import Event, EventTypeLike
from ._future import LazyFuture
from ._inline import deliver_inline
from ._lifecycle import register, remaining
from ._on_loop import deliver_on_loop
from ._outlets import Outlet
from ._registry import Registry
from ._report import DeliveryReport
from ._runtime import Runtime
from ._settings import BusSettings, LiveSettings, check_setting, default_of
from ._worker import NowaitJob, WorkQueue

__all__ = ["EventBus"]

logger = logging.getLogger("blinker_events")


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
        timeout: float | None = default_of("timeout"),
        propagate_exceptions: bool = default_of("propagate_exceptions"),
        failure_threshold: int = default_of("failure_threshold"),
        history_size: int = default_of("history_size"),
        max_depth: int = default_of("max_depth"),
        queue_size: int = default_of("queue_size"),
        overflow: str = default_of("overflow"),
        sync_executor: str = default_of("sync_executor"),
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
        )
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        self.name = str.__str__(name)  # a str subclass by its value
        self._init_registry()
        #: The one current settings value; everything reads it at use.
        self._live = LiveSettings(settings)
        #: All the dispatch paths get of this bus (see :mod:`._runtime`).
        self._runtime = Runtime(self.name, self._lock, self._live, self._route, self._signals, self)
        # The bus's own handles on its runtime's parts.
        self._outcomes = self._runtime.outcomes
        self._history = self._runtime.history
        self._pool = self._runtime.pool
        self._loop_thread = self._runtime.loop_thread
        self._queue = WorkQueue(self._pool, self._live)
        register(self, self._queue, (self._lock, self._bridges._lock, self._history._lock))

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
        runtime = self._runtime
        report, override, route = runtime.begin(event, timeout)
        if route is None:
            return report
        if route.subs:
            deliver_inline(runtime, report, route, override)
        return runtime.finish(report)

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
        runtime = self._runtime
        report, override, route = runtime.begin(event, timeout)
        if route is None:
            return report
        if route.subs:
            await deliver_on_loop(runtime, report, route, override)
        # Only announcements need awaiting: without any, the plain finish
        # ends it the same way, and no coroutine is made per publish.
        return await runtime.finish_async(report) if report.disabled else runtime.finish(report)

    def publish_nowait(self, event: Event, *, timeout: float | None = None) -> Future[DeliveryReport]:
        """Queue ``event`` for the worker and return at once.

        The returned future resolves to the report -- or, with propagation
        on, to the exception ``publish_sync`` would have raised. Dispatches
        start in publish order. When the queue is full the ``overflow``
        policy applies; ``"block"`` waits at most the publish's timeout (the
        bus default if not given), and raises :class:`QueueFullError` at once
        on a thread that runs an event loop.
        """
        runtime = self._runtime
        report, override, route = runtime.begin(event, timeout, routed=False)
        future: Future[DeliveryReport] = LazyFuture()
        if route is None:
            future.set_result(report)
            return future
        job = NowaitJob(runtime, self._queue, report, override, contextvars.copy_context(), future)
        self._queue.put(job, override or runtime.live.value.timeout)  # no subscription's yet: not routed
        return future

    # The Redis bridge's handle on the outlets (it drops itself in a forked
    # child without the lock); the outlets themselves are the runtime's.
    @property
    def _outlets(self) -> tuple[Outlet, ...]:
        return self._runtime.outlets

    @_outlets.setter
    def _outlets(self, outlets: tuple[Outlet, ...]) -> None:
        self._runtime.outlets = outlets

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
            if outlet not in self._runtime.outlets:
                self._runtime.outlets = (*self._runtime.outlets, outlet)

    def remove_outlet(self, outlet: Outlet) -> bool:
        """Stop offering events to ``outlet``; False if it was not added."""
        with self._lock:
            if outlet not in self._runtime.outlets:
                return False
            self._runtime.outlets = tuple(o for o in self._runtime.outlets if o is not outlet)
            return True

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
        self._runtime.dispatch_context = factory

    @property
    def dispatch_context(self) -> Callable[[], AbstractContextManager[Any]] | None:
        """What :meth:`set_dispatch_context` set, or None."""
        return self._runtime.dispatch_context

    # -- settings ------------------------------------------------------------

    @property
    def settings(self) -> BusSettings:
        """The current settings: one frozen, checked value. It never changes;
        :meth:`configure` (and each ``set_*``) swaps in a new one."""
        return self._live.value

    def configure(self, **changes: Any) -> None:
        """Change several settings at once: any fields of :class:`BusSettings`
        (``timeout``, ``propagate_exceptions``, ``failure_threshold``,
        ``history_size``, ``max_depth``, ``queue_size``, ``overflow``,
        ``sync_executor``). The whole new value is checked before it is
        swapped in, atomically, so a bad one (TypeError/ValueError naming it)
        changes nothing, and a publish sees either every change or none."""
        self._live.change(self._follow_settings, **changes)

    def _set(self, setting: str, value: Any, label: str) -> None:
        # The set_* methods name their argument in errors, not the setting.
        self._live.change(self._follow_settings, **{setting: check_setting(setting, value, label)})

    def _follow_settings(self, old: BusSettings, new: BusSettings) -> None:
        # The history's bound is state (a deque's maxlen), not a value read
        # at use: it follows the swap, under the same lock.
        if new.history_size != old.history_size:
            self._history.resize(new.history_size)

    def set_timeout(self, seconds: float | None) -> None:
        """Default per-receiver timeout: a positive finite number, or None."""
        self._set("timeout", seconds, "seconds")

    def set_propagate_exceptions(self, flag: bool) -> None:
        self._set("propagate_exceptions", flag, "flag")

    def set_failure_threshold(self, n: int) -> None:
        self._set("failure_threshold", n, "n")

    def set_history_size(self, n: int) -> None:
        """Keep the last ``n`` publishes (default 1000); 0 turns history off."""
        self._set("history_size", n, "n")

    def set_max_depth(self, n: int) -> None:
        self._set("max_depth", n, "n")

    def set_queue_size(self, n: int) -> None:
        """Bound of the worker queue. Shrinking below what is queued drops
        nothing: publishers meet the overflow policy until it drains."""
        self._set("queue_size", n, "n")

    def set_overflow(self, policy: str) -> None:
        """``"block"``, ``"raise"`` or ``"drop_oldest"``; see the README."""
        self._set("overflow", policy, "policy")

    def set_sync_executor(self, name: str) -> None:
        """Where ``await publish`` runs sync receivers from now on:
        ``"worker"`` or ``"thread_sensitive"``."""
        self._set("sync_executor", name, "name")

    @property
    def timeout(self) -> float | None:
        return self._live.value.timeout

    @property
    def propagate_exceptions(self) -> bool:
        return self._live.value.propagate_exceptions

    @property
    def failure_threshold(self) -> int:
        return self._live.value.failure_threshold

    @property
    def history_size(self) -> int:
        return self._live.value.history_size

    @property
    def max_depth(self) -> int:
        return self._live.value.max_depth

    @property
    def queue_size(self) -> int:
        return self._live.value.queue_size

    @property
    def overflow(self) -> str:
        return self._live.value.overflow

    @property
    def sync_executor(self) -> str:
        return self._live.value.sync_executor

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
        return self._runtime.enabled

    def enable(self) -> None:
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
        for outlet in self._runtime.outlets:
            try:
                outlet.close(remaining(deadline))
            except Exception:
                logger.exception("shutdown: closing outlet %s failed", describe(outlet))
        self._loop_thread.stop(remaining(deadline))
        self._pool.close()
        return dropped

    def __repr__(self) -> str:
        state = "enabled" if self._runtime.enabled else "disabled"
        return f"<EventBus {self.name!r} {state}, {len(self._subscriptions)} subscriptions>"
