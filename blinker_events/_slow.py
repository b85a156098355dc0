"""The slow-receiver warning: a receiver still running ``slow_after``
seconds after it started is logged once, with where it is running, and
counted -- a warning that comes before its timeout, or without one.

The watchdog (:mod:`._watchdog`) does the watching, on the deadline
machinery it keeps for timeouts: a sync receiver's watch tuple carries the
delivery's :class:`SlowCheck`, and an async receiver that suspended is
entered in ``watchdog.slow_tasks`` as an :class:`AsyncSlow`. Nothing is made
or read per receiver while ``slow_after`` is None, so the warning costs
nothing when it is off.

The stack in the warning is the receiver's own: for a sync receiver the
frames of the thread running it (``sys._current_frames()``), for an async
one its coroutine's chain of awaits (``cr_await``), read from the watchdog
thread, so it shows even while the receiver's loop is blocked.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ._describe import describe
from ._watchdog import watchdog

if TYPE_CHECKING:
    from ._events import Event
    from ._report import DeliveryReport
    from ._subscription import Subscription

__all__ = ["AsyncSlow", "SlowCheck", "SlowCounter", "watch_async"]

logger = logging.getLogger("blinker_events")


class SlowCounter:
    """A bus's count of slow-receiver warnings (``bus.stats()["slow_receivers"]``).

    Only the watchdog thread adds to it (one at a time: a new watchdog
    starts only after the old one ended), so the count needs no lock."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class SlowCheck:
    """What one delivery's receivers are watched for: ``after`` seconds
    (the bus's ``slow_after`` when the delivery began), and where a slow one
    is recorded -- the delivery's report (``report.slow``) and its bus's
    :class:`SlowCounter`."""

    __slots__ = ("after", "counter", "report")

    def __init__(self, after: float, report: DeliveryReport, counter: SlowCounter) -> None:
        self.after = after
        self.report = report
        self.counter = counter

    def warn(self, sub: Subscription, event: Event, elapsed: float, where: str, stack: str) -> None:
        """Record ``sub`` as slow: counted, in the report, and logged
        (WARNING, logger ``blinker_events``) with ``stack``. Called on the
        watchdog thread, once per receiver call."""
        self.counter.count += 1
        self.report._add_slow(sub)
        logger.warning(
            "receiver %s is slow: still running %.3fs after it started handling %s (slow_after=%ss, %s). "
            "It is running here:\n%s",
            sub.name,
            elapsed,
            describe(event),
            self.after,
            where,
            stack,
        )


class AsyncSlow:
    """An async receiver that suspended, watched for being slow:
    ``started`` is a ``perf_counter`` reading, ``awaitable`` what the
    receiver returned (its stack is read from it), ``task`` the receiver's
    own task, if it has one (the watchdog forgets the entry once it is
    done), ``fired`` set once the warning was given."""

    __slots__ = ("awaitable", "check", "event", "fired", "started", "sub", "task")

    def __init__(
        self,
        sub: Subscription,
        event: Event,
        started: float,
        awaitable: Any,
        check: SlowCheck,
        task: asyncio.Task[Any] | None,
    ) -> None:
        self.sub = sub
        self.event = event
        self.started = started
        self.awaitable = awaitable
        self.check = check
        self.task = task
        self.fired = False


def watch_async(
    sub: Subscription,
    event: Event,
    awaitable: Any,
    after: float,
    report: DeliveryReport,
    counter: SlowCounter,
    task: asyncio.Task[Any] | None = None,
) -> AsyncSlow:
    """Watch the async receiver ``sub``, whose ``awaitable`` suspended just
    now, for running ``after`` seconds (recorded in ``report`` and
    ``counter``). A receiver running in a ``task`` of its own is forgotten
    by the watchdog once that task is done; without one (it runs in its
    publisher's task) the caller discards the returned entry from
    ``watchdog.slow_tasks`` when the receiver ends."""
    entry = AsyncSlow(sub, event, perf_counter(), awaitable, SlowCheck(after, report, counter), task)
    watchdog.slow_tasks.add(entry)
    watchdog.ensure_running()
    return entry
