"""The pytest plugin, loaded through the ``pytest11`` entry point of the
installed package (no conftest needed). Its fixtures:

- ``event_bus``: a fresh :class:`~blinker_events.EventBus` per test, shut
  down after it;
- ``isolated_default_bus``: :data:`blinker_events.default_bus`, with its
  state before the test -- the application's import-time subscriptions,
  settings, history -- given back after it (see
  :class:`~blinker_events.testing.Isolation`); the test starts with an
  empty history;
- ``event_capture``: a :class:`~blinker_events.testing.Capture` of the
  default bus, recording for the whole test (it isolates the default bus
  too).

Receivers that failed or timed out during the test without the bus raising
it (``propagate_exceptions`` off) are reported at teardown with a
:class:`~blinker_events.testing.ReceiverFailureWarning`, listing each: a
warning, not a failure, because a test may mean to exercise a failing
receiver, and pytest's own ``filterwarnings`` then decides per project
(``error::...`` makes them fail) or per test (``ignore::...``). Events
the teardown had to drop from the worker queue are warned of the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from blinker_events import DeliveryReport, EventBus, default_bus
from blinker_events.lowlevel import describe

from ._capture import Capture, ReceiverFailureWarning
from ._isolation import DRAIN_SECONDS, Isolation

__all__ = ["event_bus", "event_capture", "isolated_default_bus"]

#: How many failures a warning lists.
LISTED = 20


def warn_failures(watch: Capture, dropped: int = 0) -> None:
    """Warn of ``watch``'s silent failures and of ``dropped`` events."""
    failures = watch.failures(silent=True)
    if failures:
        lines = [
            f"{len(failures)} receiver failure(s) on {describe(watch.bus)} were not raised to anyone:",
            *(
                f"  {sub.name} handling {describe(report.event)}: {type(error).__name__}: {_text(error)}"
                for report, sub, error in failures[:LISTED]
            ),
        ]
        if len(failures) > LISTED:
            lines.append(f"  ... and {len(failures) - LISTED} more")
        warnings.warn(ReceiverFailureWarning("\n".join(lines)), stacklevel=2)
    if dropped:
        warnings.warn(
            ReceiverFailureWarning(f"{describe(watch.bus)} dropped {dropped} queued event(s) at teardown"),
            stacklevel=2,
        )


class _FailureWatch(Capture):
    """A capture that keeps only the reports of publishes where a receiver
    failed or timed out: the fixtures watch the whole test, and must not
    keep every event (and what its data holds) alive until teardown."""

    def _observe(self, report: DeliveryReport) -> None:
        if report.failed or report.timed_out:
            super()._observe(report)


def _text(error: BaseException) -> str:
    """``str(error)``, described; its repr if its ``__str__`` raises."""
    try:
        text = str(error)
    except Exception:
        return describe(error)
    return describe(text)


@pytest.fixture
def event_bus() -> Iterator[EventBus]:
    """A fresh EventBus for this test, shut down (its queue drained) after
    it; silent receiver failures and dropped events are warned of."""
    bus = EventBus(name="event_bus")
    watch = _FailureWatch(bus).start()
    try:
        yield bus
        dropped = bus.shutdown(timeout=DRAIN_SECONDS)
    finally:
        watch.stop()
    warn_failures(watch, dropped)


@pytest.fixture
def isolated_default_bus() -> Iterator[EventBus]:
    """The default bus, given back after the test exactly as it was
    before: what the test subscribed is removed, what it unsubscribed or
    left disabled is back, settings, outlets and history are restored."""
    # The watch first, so the snapshot has it and the restore (which
    # removes observers the test left) keeps it for the drain it makes.
    watch = _FailureWatch(default_bus).start()
    isolation = Isolation(default_bus)
    isolation.save()
    try:
        yield default_bus
    finally:
        try:
            isolation.restore()  # drains first, while the watch still records
        finally:
            watch.stop()
    warn_failures(watch, isolation.dropped)


@pytest.fixture
def event_capture(isolated_default_bus: EventBus) -> Iterator[Capture]:
    """A capture of the default bus for the whole test."""
    with Capture(isolated_default_bus) as captured:
        yield captured
