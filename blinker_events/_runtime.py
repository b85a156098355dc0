"""The runtime: what the dispatch paths need of a bus, and nothing more.

:mod:`._sync`, :mod:`._async` and :mod:`._worker` receive a
:class:`Runtime` rather than the :class:`~blinker_events.EventBus`: the
outcome recorder (:class:`~._guards.Guards`), the history, the current
settings, the bus's pool and loop thread, the dispatch context, the tasks it
keeps alive, and how an event finds its route. The rules every path
shares live here, once: the timeout that applies to a receiver, whether a
receiver may run (the disabled and cycle rule), and how a publish ends
(history, disable announcements, propagation).

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

from ._context import Factory
from ._events import Event, SystemEventType
from ._guards import Guards, check_cycle
from ._history import History
from ._report import DeliveryReport
from ._settings import LiveSettings
from ._signals import Route
from ._subscription import Subscription
from ._threads import LoopThread, ThreadPool

__all__ = ["Publisher", "Runtime"]

logger = logging.getLogger("blinker_events")


class Publisher(Protocol):
    """Where a runtime publishes the events it makes itself (the
    ``SUBSCRIBER_DISABLED`` announcements): the bus's public API."""

    def publish_sync(self, event: Event) -> DeliveryReport: ...

    async def publish(self, event: Event) -> DeliveryReport: ...


class Runtime:
    """The shared state of one bus's dispatch, handed to every path.

    ``dispatch_context`` is the factory entered around deliveries on the
    bus's own threads (None: none); ``route`` finds an event's route (the
    registry's); ``publisher`` publishes the announcements. Each of these
    is set by the bus that owns the runtime.
    """

    __slots__ = (
        "dispatch_context",
        "guards",
        "history",
        "live",
        "loop_thread",
        "name",
        "pool",
        "publisher",
        "route",
        "tasks",
    )

    def __init__(
        self,
        name: str,
        lock: threading.RLock,
        live: LiveSettings,
        route: Callable[[Event], Route],
        publisher: Publisher,
    ) -> None:
        self.name = name
        self.live = live
        self.route = route
        self.publisher = publisher
        self.guards = Guards(lock, live)
        self.history = History(live.value.history_size)
        self.pool = ThreadPool(f"{name}-pool")
        self.loop_thread = LoopThread(name)
        #: Tasks the bus started and must keep referenced until they end
        #: (asyncio holds tasks only weakly).
        self.tasks: set[asyncio.Task[Any]] = set()
        self.dispatch_context: Factory | None = None

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
        :func:`~._guards.check_cycle`). Either is recorded in ``report``.
        The paths call this only when ``sub.disabled or chain``, so a
        top-level publish to enabled receivers pays nothing for it."""
        if sub.disabled:
            report.add_skip(sub, "disabled")
            return False
        if chain:
            cycle = check_cycle(sub, chain, self.live.value.max_depth)
            if cycle is not None:
                self.guards.skipped_cycle(report, sub, cycle)
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

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` referenced until it ends."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def keep_until_done(self, task: asyncio.Task[Any], sub: Subscription, event: Event, when: str) -> None:
        """Hold a cancelled receiver task until it ends; log what it raises late."""
        self.tasks.add(task)

        def ended(t: asyncio.Task[Any]) -> None:
            self.tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("receiver %s raised %s handling %s", sub.name, when, repr(event), exc_info=t.exception())

        task.add_done_callback(ended)


def _has_errors(report: DeliveryReport) -> bool:
    """Whether a propagating bus raises for ``report``: something failed,
    timed out, was stopped by the cycle guard, or the dispatch context
    raised (the errors :meth:`DeliveryReport.raise_errors` raises)."""
    return bool(report.failed or report.timed_out or report.skipped or report.context_errors)
