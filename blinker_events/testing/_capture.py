"""The capture: what a bus published, with assertions that say what was
published instead when they fail.

A capture observes the bus (``lowlevel.observe``): it is handed each
publish's report once the publish's receivers are done, on all three
paths -- before ``publish_sync`` and ``await publish`` return, and when the
worker finished a ``publish_nowait`` (:meth:`Capture.wait_until_published`
waits for that). It is not a subscription, so it changes no subscriber
count, is never timed out or disabled, and sees events that reach no
receiver too. A publish on a disabled bus is no publish and is not seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from blinker_events import (
    DeliveryReport,
    Event,
    EventBus,
    EventTimeoutError,
    EventTypeLike,
    Subscription,
    default_bus,
    lowlevel,
)
from blinker_events.lowlevel import describe, shown_name, type_matcher

__all__ = ["Capture", "ReceiverFailureWarning", "capture"]

#: How many published events a failure message lists (the newest).
SHOWN = 20


class ReceiverFailureWarning(UserWarning):
    """Receivers failed or timed out during a test, and the bus did not
    raise it to anyone (it does not propagate exceptions): the test passed
    while something it triggered broke. Make it an error with
    ``-W error::blinker_events.testing.ReceiverFailureWarning`` (or
    ``filterwarnings``), or ignore it in a test that expects failures."""


def _equal(held: object, wanted: object) -> bool:
    """``held == wanted`` for a matcher: what either side's ``__eq__``
    raises (an application object's may) counts as not equal."""
    if held is wanted:
        return True
    try:
        return bool(held == wanted)
    except Exception:
        return False


def _subset_text(data: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={describe(value, 80)}" for key, value in data.items())


class Capture:
    """What ``bus`` published while the capture was active (see
    :func:`capture`), oldest first. Thread-safe: publishes on any thread
    are recorded, and reading gives a snapshot."""

    def __init__(self, bus: EventBus) -> None:
        if not isinstance(bus, EventBus):
            raise TypeError(f"bus must be an EventBus, not {type(bus).__name__}")
        self.bus = bus
        self._changed = threading.Condition()
        self._reports: list[tuple[DeliveryReport, bool]] = []
        self._active = False
        self._observer = self._observe  # one bound method, to unobserve by identity

    # -- recording --------------------------------------------------------

    def _observe(self, report: DeliveryReport) -> None:
        # Whether the bus raised this publish's errors to its publisher is
        # decided by the setting at the end of the publish: now.
        propagated = self.bus.propagate_exceptions
        with self._changed:
            self._reports.append((report, propagated))
            self._changed.notify_all()

    def start(self) -> Capture:
        """Start recording (``with`` does it); a capture starts once."""
        if self._active:
            raise RuntimeError("this capture is already recording")
        self._active = True
        lowlevel.observe(self.bus, self._observer)
        return self

    def stop(self) -> None:
        """Stop recording; what was recorded stays readable."""
        self._active = False
        lowlevel.unobserve(self.bus, self._observer)

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def clear(self) -> None:
        """Forget what was recorded so far (recording goes on)."""
        with self._changed:
            self._reports.clear()

    # -- reading ----------------------------------------------------------

    @property
    def reports(self) -> list[DeliveryReport]:
        """The delivery report of each publish, in the order they ended."""
        with self._changed:
            return [report for report, _ in self._reports]

    @property
    def events(self) -> list[Event]:
        """The events published (``report.event`` of each report)."""
        return [report.event for report in self.reports]

    def published(self, event_type: EventTypeLike | None = None, /, **data_subset: Any) -> list[Event]:
        """The recorded events of ``event_type`` (None: any) whose ``data``
        has every key of ``data_subset`` with an equal value."""
        of_type = type_matcher(event_type)
        return [event for event in self.events if self._matches(event, of_type, data_subset)]

    @staticmethod
    def _matches(event: Event, of_type: Callable[[Event], bool], data_subset: Mapping[str, Any]) -> bool:
        if not of_type(event):
            return False
        data = event.data
        return all(name in data and _equal(data[name], value) for name, value in data_subset.items())

    def failures(self, *, silent: bool = False) -> list[tuple[DeliveryReport, Subscription, BaseException]]:
        """``(report, subscription, error)`` for every receiver that raised
        or timed out (the error an :class:`~blinker_events.EventTimeoutError`
        then); ``silent``: only those of publishes whose bus did not raise
        them (``propagate_exceptions`` off when the publish ended)."""
        with self._changed:
            recorded = list(self._reports)
        found: list[tuple[DeliveryReport, Subscription, BaseException]] = []
        for report, propagated in recorded:
            if silent and propagated:
                continue
            found.extend((report, sub, exc) for sub, exc in report.failed)
            for sub in report.timed_out:
                found.append(
                    (report, sub, EventTimeoutError(f"{sub.name} timed out handling {describe(report.event)}"))
                )
        return found

    # -- assertions -------------------------------------------------------

    def _wanted(self, event_type: EventTypeLike, data_subset: Mapping[str, Any]) -> str:
        name = shown_name(event_type)
        return f"{name} event with {_subset_text(data_subset)}" if data_subset else f"{name} event"

    def _listing(self, events: list[Event]) -> Iterator[str]:
        if len(events) > SHOWN:
            yield f"  ... {len(events) - SHOWN} earlier"
        for event in events[-SHOWN:]:
            yield f"  {describe(event)}"

    def _missing(self, event_type: EventTypeLike, data_subset: Mapping[str, Any]) -> str:
        events = self.events
        head = f"no {self._wanted(event_type, data_subset)} was published on {describe(self.bus)}"
        if not events:
            return f"{head}; nothing was published"
        return "\n".join([f"{head}; published instead ({len(events)}):", *self._listing(events)])

    def assert_published(self, event_type: EventTypeLike, /, **data_subset: Any) -> Event:
        """Assert that an event of ``event_type`` whose ``data`` contains
        ``data_subset`` was published, and return the first one. On failure
        the ``AssertionError`` lists what was published instead (each event
        described safely, the newest 20)."""
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        found = self.published(event_type, **data_subset)
        if not found:
            raise AssertionError(self._missing(event_type, data_subset))
        return found[0]

    def assert_not_published(self, event_type: EventTypeLike, /, **data_subset: Any) -> None:
        """Assert that no event of ``event_type`` (with ``data_subset``, if
        given) was published; the ``AssertionError`` lists those that were."""
        __tracebackhide__ = True
        found = self.published(event_type, **data_subset)
        if found:
            head = f"expected no {self._wanted(event_type, data_subset)} on {describe(self.bus)}"
            raise AssertionError("\n".join([f"{head}, but {len(found)} were published:", *self._listing(found)]))

    def wait_until_published(
        self, event_type: EventTypeLike, /, *, timeout: float | None = 5.0, **data_subset: Any
    ) -> Event:
        """:meth:`assert_published`, waiting up to ``timeout`` seconds for
        the event (one recorded earlier counts; None: no limit): for
        ``publish_nowait`` and other threads. It blocks this thread -- in a coroutine, use
        ``await bus.wait_for(...)`` or ``bus.expect`` instead."""
        __tracebackhide__ = True
        checked = lowlevel.check_timeout(timeout)
        deadline = float("inf") if checked is None else time.monotonic() + checked
        of_type = type_matcher(event_type)
        with self._changed:
            while True:
                for report, _ in self._reports:
                    if self._matches(report.event, of_type, data_subset):
                        return report.event
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(None if checked is None else left)
        raise AssertionError(f"after {checked:g}s: {self._missing(event_type, data_subset)}")

    def __len__(self) -> int:
        with self._changed:
            return len(self._reports)

    def __repr__(self) -> str:
        state = "recording" if self._active else "stopped"
        return f"<Capture of {describe(self.bus)}: {len(self)} published, {state}>"


def capture(bus: EventBus | None = None) -> Capture:
    """A :class:`Capture` of ``bus`` (None: the default bus), recording
    from entering its ``with`` block (or ``start()``) to leaving it::

        with capture(bus) as published:
            bus.publish_sync(Event("order.placed", {"order_id": 42}))
        published.assert_published("order.placed", order_id=42)
    """
    return Capture(default_bus if bus is None else bus)
