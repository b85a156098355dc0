"""How many threads one hung receiver can tie up before it is disabled --
the bound docs/timeouts.md states for each path."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from blinker_events import DeliveryReport, Event, EventBus, Subscription
from blinker_events._threads import MAX_THREADS

from .conftest import Demo

WAIT = 5.0


def _skips(report: DeliveryReport) -> list[tuple[Subscription, str]]:
    return [(skip[0], skip[1]) for skip in report.skipped]


def _stuck_settles(bus: EventBus, expected: int) -> int:
    """``stuck_threads`` once it reached ``expected`` (or after WAIT)."""
    deadline = time.perf_counter() + WAIT
    while bus.stats()["stuck_threads"] < expected and time.perf_counter() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # more than a timeout: anything else stuck would be counted by now
    stuck: int = bus.stats()["stuck_threads"]
    return stuck


def test_queued_publishes_to_a_hung_receiver_tie_up_exactly_failure_threshold_threads(
    bus: EventBus, release: threading.Event
) -> None:
    bus.set_failure_threshold(3)
    sub = bus.subscribe(Demo.PING, lambda event: release.wait(WAIT), timeout=0.2)
    reports = [f.result(WAIT) for f in [bus.publish_nowait(Event(Demo.PING)) for _ in range(20)]]
    assert [len(r.timed_out) for r in reports] == [1, 1, 1] + [0] * 17
    assert [_skips(r) for r in reports[3:]] == [[(sub, "disabled")]] * 17
    assert _stuck_settles(bus, 3) == 3
    assert sub.disabled


@pytest.mark.asyncio
async def test_concurrent_publishes_to_a_hung_receiver_tie_up_at_most_the_pools_limit(
    bus: EventBus, release: threading.Event
) -> None:
    threshold = 3
    bus.set_failure_threshold(threshold)
    sub = bus.subscribe(Demo.PING, lambda event: release.wait(WAIT), timeout=0.2)
    reports = await asyncio.gather(*(bus.publish(Event(Demo.PING)) for _ in range(200)))
    assert sub.disabled
    assert sum(len(r.timed_out) for r in reports) + sum(len(r.skipped) for r in reports) == 200
    # Every call that started before the disable took effect is stuck: at
    # most the pool's limit of threads running receivers at once, plus the
    # calls that started in the instant between the first timeout and the
    # disable (fewer than the threshold).
    stuck = await asyncio.to_thread(_stuck_settles, bus, MAX_THREADS)
    assert MAX_THREADS <= stuck < MAX_THREADS + threshold
    # Disabled, it ties up no more threads.
    again = await asyncio.gather(*(bus.publish(Event(Demo.PING)) for _ in range(200)))
    assert [_skips(r) for r in again] == [[(sub, "disabled")]] * 200
    assert bus.stats()["stuck_threads"] == stuck
