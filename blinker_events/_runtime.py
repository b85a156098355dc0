"""The runtime: what the dispatch paths need of a bus, and how every
publish begins and ends.

:mod:`._sync`, :mod:`._async` and :mod:`._worker` receive a
:class:`Runtime` rather than the :class:`~blinker_events.EventBus`: the
outcome recorder (:class:`~._outcomes.OutcomeRecorder`), the history, the current
settings, the bus's pool and loop thread, the dispatch context, and how an
event finds its route. The rules every path
shares live here, once: how a publish begins (:meth:`Runtime.begin`:
argument checks, the report, enabled, outlets, the route), the timeout that
applies to a receiver, whether a receiver may run (the disabled and cycle
rule), and how a publish ends (:meth:`Runtime.finish`: history, disable
announcements, propagation). The paths -- :mod:`._inline`,
:mod:`._on_loop`, :mod:`._worker` -- differ only in where receivers run:

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

Nothing here imports the facade: the one thing a runtime needs from above
-- publishing the ``SUBSCRIBER_DISABLED`` meta-event -- it asks of a
:class:`Publisher`, which the bus is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from ._checks import check_timeout
from ._context import Factory
from ._describe import describe
from ._events import Event
from ._history import History
from ._hooks import Hooks
from ._lifecycle import remaining
from ._loop_thread import LoopThread, hold_until_done
from ._outcomes import OutcomeRecorder, check_cycle
from ._outlets import Outlet, offer
from ._report import DeliveryReport
from ._settings import BusSettings, LiveSettings
from ._signals import EventSignal, Route
from ._slow import SlowCounter
from ._subscription import Subscription
from ._threads import ThreadPool
from ._types import SystemEventType, TypeKey

__all__ = ["UNROUTED", "Publisher", "Runtime"]

logger = logging.getLogger("blinker_events")


#: What :meth:`Runtime.begin` gives as the route of a publish that goes on
#: but is routed later (``publish_nowait``: on the worker, at dispatch).
UNROUTED = Route([], [])


class Publisher(Protocol):
    """Where a runtime publishes the events it makes itself (the
    ``SUBSCRIBER_DISABLED`` announcements): the bus's public API."""

    def publish_sync(self, event: Event) -> DeliveryReport: ...

    async def publish(self, event: Event) -> DeliveryReport: ...


class Runtime:
    """The shared state of one bus's dispatch, handed to every path.

    ``enabled`` (False: publishing is a no-op), ``outlets`` (offered every
    local event first) and ``dispatch_context`` (the factory entered around
    deliveries on the bus's own threads; None: none) are set by the bus
    that owns the runtime. ``route`` finds an event's route and ``signals``
    is the registry's map of signals with receivers, whose cached route
    :meth:`begin` reads first; ``publisher`` publishes the announcements.
    """

    __slots__ = (
        "dispatch_context",
        "enabled",
        "history",
        "hooks",
        "live",
        "lock",
        "loop_thread",
        "name",
        "outcomes",
        "outlets",
        "pool",
        "publisher",
        "route",
        "signals",
        "slow",
        "slow_after",
    )

    def __init__(
        self,
        name: str,
        lock: threading.RLock,
        live: LiveSettings,
        route: Callable[[Event], Route],
        signals: dict[TypeKey, EventSignal],
        publisher: Publisher,
    ) -> None:
        self.name = name
        self.lock = lock
        self.live = live
        self.route = route
        self.signals = signals
        self.publisher = publisher
        self.outcomes = OutcomeRecorder(lock, live)
        self.history = History(live.value.history_size)
        self.pool = ThreadPool(f"{name}-pool")
        self.loop_thread = LoopThread(name)
        self.dispatch_context: Factory | None = None
        self.enabled = True
        self.outlets: tuple[Outlet, ...] = ()
        #: The instrumentation (see :mod:`._hooks`); None: none, and no cost.
        self.hooks: Hooks | None = None
        #: Slow-receiver warnings given (see :mod:`._slow`), and the
        #: ``slow_after`` setting, followed here (see _follow_settings).
        self.slow = SlowCounter()
        self.slow_after = live.value.slow_after

    # -- settings -----------------------------------------------------------

    def configure(self, **changes: Any) -> BusSettings:
        """Swap in the current settings with ``changes``, checked in full
        first (see :class:`~._settings.LiveSettings`)."""
        return self.live.change(self._follow_settings, **changes)

    def _follow_settings(self, old: BusSettings, new: BusSettings) -> None:
        # The history's bound is state (a deque's maxlen), not a value read
        # at use: it follows the swap, under the same lock.
        if new.history_size != old.history_size:
            self.history.resize(new.history_size)
        # Read by every sync delivery: one attribute of the runtime is two
        # loads fewer than the settings' own, on the publish hot path.
        self.slow_after = new.slow_after

    # -- outlets ------------------------------------------------------------

    def add_outlet(self, outlet: Outlet) -> None:
        """Offer every local event to ``outlet`` first (see :mod:`._outlets`);
        an outlet is added once."""
        for name in ("prepare", "send", "close"):
            if not callable(getattr(outlet, name, None)):
                raise TypeError(f"outlet must have a {name}() method")
        if not isinstance(getattr(outlet, "takes_over", None), bool):
            raise TypeError("outlet must have a bool takes_over attribute")
        with self.lock:
            if outlet not in self.outlets:
                self.outlets = (*self.outlets, outlet)

    def remove_outlet(self, outlet: Outlet) -> bool:
        """Stop offering events to ``outlet``; False if it was not added."""
        with self.lock:
            if outlet not in self.outlets:
                return False
            self.outlets = tuple(o for o in self.outlets if o is not outlet)
            return True

    def close_outlets(self, deadline: float | None) -> int:
        """Let every outlet flush and close by ``deadline`` (a
        ``perf_counter`` reading; None: no limit); return how many events
        they dropped (the sum of their ``close`` returns). One that raises
        is logged and the others still close."""
        dropped = 0
        for outlet in self.outlets:
            try:
                count = outlet.close(remaining(deadline))
            except Exception:
                logger.exception("shutdown: closing outlet %s failed", describe(outlet))
                continue
            if isinstance(count, int) and count > 0:  # None (or anything else): none it knows of
                dropped += count
        return dropped

    # -- how a publish begins -------------------------------------------------

    def begin(
        self, event: Event, timeout: float | None, *, routed: bool = True
    ) -> tuple[DeliveryReport, float | None, Route | None]:
        """Start a publish: ``(report, override, route)``.

        Checks the arguments (TypeError/ValueError before anything happens),
        makes the report, and ends the publish right here -- route None, the
        report final -- when the bus is disabled or an outlet took the event
        over (then it is in the history, ``handed_off``). Otherwise ``route``
        is who receives the event now, or :data:`UNROUTED` if not
        ``routed``. ``override`` is the publish's own timeout, checked.
        """
        if not isinstance(event, Event):
            raise TypeError(f"event must be an Event, not {type(event).__name__}")
        override = None if timeout is None else check_timeout(timeout)
        report = DeliveryReport(event)
        if not self.enabled:
            return report, override, None
        if self.outlets and event._origin is None and offer(self.outlets, event):
            return self.handed_off(report), override, None
        if not routed:
            return report, override, UNROUTED
        # The route lookup's common case, inlined: this is the publish hot path.
        signal = self.signals.get(event._key)
        route = None if signal is None else signal.route
        if route is None:
            route = self.route(event)
        elif route.filtered:  # the snapshot is at hand: only the sender filter is left
            route = route.for_source(event._source)
        if route.collect:  # a drop-in Signal's send returns every receiver's result
            report.results = []
        return report, override, route

    # -- the rules every path shares ---------------------------------------

    def timeout_for(self, sub: Subscription, override: float | None) -> float | None:
        """The timeout a receiver runs under: the publish's own, else the
        subscription's, else the bus default (None: no timeout). The sync
        hot loop reads the default once per publish and applies the same
        precedence inline."""
        return override or sub.timeout or self.live.value.timeout

    def admit(self, report: DeliveryReport, sub: Subscription, chain: tuple[Subscription, ...]) -> bool:
        """Whether an active ``sub`` may run in this delivery: not if it is
        disabled (skipped, reason ``"disabled"``), nor if the cycle rule
        stops it (skipped, reason ``"cycle"``; see
        :func:`~._outcomes.check_cycle`). Either is recorded in ``report``.
        The paths call this only when ``sub.disabled or chain``, so a
        top-level publish to enabled receivers pays nothing for it."""
        if sub.disabled:
            report._add_skip(sub, "disabled")
            if (hooks := self.hooks) is not None:
                hooks.skipped(report.event, sub, "disabled")
            return False
        if chain:
            cycle = check_cycle(sub, chain, self.live.value.max_depth)
            if cycle is not None:
                self.outcomes.skipped_cycle(report, sub, cycle)
                if (hooks := self.hooks) is not None:
                    hooks.skipped(report.event, sub, "cycle")
                return False
        return True

    # -- how a publish ends --------------------------------------------------

    def finish(self, report: DeliveryReport, *, propagate: bool = True) -> DeliveryReport:
        """End a publish whose receivers are done: record it in the history,
        announce the subscriptions it disabled (sync receivers of the
        announcement run in this thread), then raise its errors if the bus
        propagates them (and ``propagate``)."""
        self.history.record(report)
        if report.disabled:
            self.announce_disabled(report)
        if propagate and self.live.value.propagate_exceptions and _has_errors(report):
            report.raise_errors()
        return report

    async def finish_async(self, report: DeliveryReport) -> DeliveryReport:
        """:meth:`finish` for ``await publish``: the announcements are
        awaited on this loop."""
        self.history.record(report)
        if report.disabled:
            await self.announce_disabled_async(report)
        if self.live.value.propagate_exceptions and _has_errors(report):
            report.raise_errors()
        return report

    def finish_cancelled(self, report: DeliveryReport) -> None:
        """End an ``await publish`` that was cancelled: it still leaves its
        history entry (late outcomes of its sync receivers join it), and if
        a failure tipped a count before the cancellation, the announcement
        is still due, in a task of its own. Nothing is raised: the
        cancellation goes on."""
        self.history.record(report)
        if report.disabled:
            hold_until_done(asyncio.get_running_loop().create_task(self.announce_disabled_async(report)))

    def handed_off(self, report: DeliveryReport) -> DeliveryReport:
        """End a publish an outlet took over: no receiver ran here."""
        report.handed_off = True
        self.history.record(report)
        return report

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
    def announce_disabled(self, report: DeliveryReport) -> None:
        for meta in self._disabled_events(report):
            with contextlib.suppress(Exception):
                self.publisher.publish_sync(meta)

    async def announce_disabled_async(self, report: DeliveryReport, start: int = 0) -> None:
        """Announce the subscriptions ``report`` disabled, from the
        ``start``-th announcement on (earlier ones were made elsewhere)."""
        for meta in self._disabled_events(report, start):
            with contextlib.suppress(Exception):
                await self.publisher.publish(meta)

    # -- tasks ---------------------------------------------------------------

    def keep_until_done(self, task: asyncio.Task[Any], sub: Subscription, event: Event, when: str) -> None:
        """Hold a cancelled receiver task until it ends; log what it raises late."""
        hold_until_done(task)

        def ended(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is not None:
                logger.error("receiver %s raised %s handling %s", sub.name, when, repr(event), exc_info=t.exception())

        task.add_done_callback(ended)


def _has_errors(report: DeliveryReport) -> bool:
    """Whether a propagating bus raises for ``report``: something failed,
    timed out, was stopped by the cycle guard, or the dispatch context
    raised (the errors :meth:`DeliveryReport.raise_errors` raises; a skip
    without an error -- a disabled receiver -- raises nothing)."""
    return bool(
        report.failed
        or report.timed_out
        or report.context_errors
        or (report.skipped and any(error is not None for _, _, error in report.skipped))
    )
