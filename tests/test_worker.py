"""The worker queue: ``publish_nowait``.

It returns a ``concurrent.futures.Future`` at once; dispatches start in
publish order; the bounded queue's overflow policy is never silent; shutdown
drains; the publisher's context travels with the event.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from blinker_events import DeliveryReport, Event, EventBus, QueueFullError

from .conftest import (
    HANG,
    BusFactory,
    Demo,
    all_collected,
    event_holding_a_component,
    hold_the_worker,
    log_records,
    wait_until,
)

CTX: contextvars.ContextVar[str] = contextvars.ContextVar("test_worker_ctx", default="unset")
WAIT = 5.0  # upper bound for waits that normally end at once


class Gated:
    """A sync receiver that records ``event.data["n"]`` and blocks on a gate
    for events whose n is in ``hold`` (all events when ``hold`` is None)."""

    def __init__(self, hold: set[int] | None = None) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.hold = hold
        self.seen: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        n = event.data["n"]
        self.started.set()
        if self.hold is None or n in self.hold:
            self.gate.wait(WAIT)
        with self.lock:
            self.seen.append(n)


@pytest.fixture
def gated(bus: EventBus) -> Iterator[Gated]:
    """A gated receiver; its gate opens at teardown, before the bus shuts down."""
    receiver = Gated()
    yield receiver
    receiver.gate.set()


def _ev(n: int) -> Event:
    return Event(Demo.PING, {"n": n})


def _start_busy(bus: EventBus, gated: Gated) -> Future[DeliveryReport]:
    """Publish n=0 and wait until the worker is inside the gated receiver (the queue is empty then)."""
    future = bus.publish_nowait(_ev(0))
    assert gated.started.wait(WAIT)
    return future


def test_publish_nowait_returns_a_future_at_once(bus: EventBus, gated: Gated) -> None:
    sub = bus.subscribe(Demo.PING, gated)
    event = _ev(0)
    future = bus.publish_nowait(event)
    assert isinstance(future, Future)
    assert gated.started.wait(WAIT)
    assert future.done() is False
    assert gated.seen == []
    gated.gate.set()
    report = future.result(WAIT)
    assert isinstance(report, DeliveryReport)
    assert report.event is event
    assert report.succeeded == [sub]
    assert gated.seen == [0]


def test_fifo_dispatch_order(bus: EventBus) -> None:
    seen: list[int] = []
    bus.subscribe(Demo.PING, lambda event: seen.append(event.data["n"]))
    futures = [bus.publish_nowait(_ev(n)) for n in range(200)]
    reports = [f.result(WAIT) for f in futures]
    assert seen == list(range(200))
    assert [r.event.data["n"] for r in reports] == list(range(200))


def test_fifo_start_order_of_async_receivers(bus: EventBus) -> None:
    started: list[int] = []

    async def areceiver(event: Event) -> None:
        started.append(event.data["n"])
        await asyncio.sleep(0)

    bus.subscribe(Demo.PING, areceiver)
    futures = [bus.publish_nowait(_ev(n)) for n in range(50)]
    assert all(len(f.result(WAIT).succeeded) == 1 for f in futures)
    assert started == list(range(50))


def test_async_receivers_on_the_worker_path(bus: EventBus) -> None:
    seen: list[tuple[int, int]] = []

    async def areceiver(event: Event) -> None:
        await asyncio.sleep(0.01)
        seen.append((event.data["n"], threading.get_ident()))

    sub = bus.subscribe(Demo.PING, areceiver)
    report = bus.publish_nowait(_ev(7)).result(WAIT)
    assert report.succeeded == [sub]
    assert [n for n, _ in seen] == [7]
    assert seen[0][1] != threading.get_ident()


def test_propagation_resolves_future_to_the_receivers_exception() -> None:
    bus = EventBus(propagate_exceptions=True)
    boom = ValueError("boom")
    ran: list[str] = []

    def bad(event: Event) -> None:
        raise boom

    try:
        bus.subscribe(Demo.PING, bad)
        bus.subscribe(Demo.PING, lambda event: ran.append("after"))
        future = bus.publish_nowait(_ev(0))
        assert future.exception(WAIT) is boom
        with pytest.raises(ValueError, match="boom"):
            future.result(WAIT)
        assert ran == ["after"]
    finally:
        assert bus.shutdown(timeout=WAIT) == 0


def test_propagation_resolves_future_to_exception_group_for_two_failures() -> None:
    bus = EventBus(propagate_exceptions=True)
    first, second = ValueError("first"), KeyError("second")

    def bad1(event: Event) -> None:
        raise first

    def bad2(event: Event) -> None:
        raise second

    try:
        bus.subscribe(Demo.PING, bad1)
        bus.subscribe(Demo.PING, bad2)
        error = bus.publish_nowait(_ev(0)).exception(WAIT)
        assert isinstance(error, ExceptionGroup)
        assert list(error.exceptions) == [first, second]
        assert error.exceptions[0] is first
        assert error.exceptions[1] is second
    finally:
        assert bus.shutdown(timeout=WAIT) == 0


def test_overflow_raise_rejects_and_counts() -> None:
    bus = EventBus(queue_size=2, overflow="raise")
    gated = Gated(hold={0})
    try:
        bus.subscribe(Demo.PING, gated)
        futures = [_start_busy(bus, gated)]
        futures += [bus.publish_nowait(_ev(n)) for n in (1, 2)]
        assert bus.stats()["queued"] == 2
        for n in (3, 4):
            with pytest.raises(QueueFullError, match="overflow='raise'"):
                bus.publish_nowait(_ev(n))
        assert bus.stats()["rejected"] == 2
        assert bus.stats()["dropped"] == 0
        gated.gate.set()
        assert [f.result(WAIT).event.data["n"] for f in futures] == [0, 1, 2]
        assert gated.seen == [0, 1, 2]
    finally:
        gated.gate.set()
        assert bus.shutdown(timeout=WAIT) == 0


def test_overflow_drop_oldest_fails_dropped_futures_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus(queue_size=2, overflow="drop_oldest")
    gated = Gated(hold={0})
    try:
        bus.subscribe(Demo.PING, gated)
        with caplog.at_level(logging.WARNING, logger="blinker_events"):
            futures = [_start_busy(bus, gated)]
            futures += [bus.publish_nowait(_ev(n)) for n in (1, 2, 3, 4)]
        # 1 and 2 were the oldest queued when 3 and 4 arrived.
        assert bus.stats()["dropped"] == 2
        assert bus.stats()["rejected"] == 0
        for n in (1, 2):
            assert isinstance(futures[n].exception(WAIT), QueueFullError)
        gated.gate.set()
        assert [futures[n].result(WAIT).event.data["n"] for n in (0, 3, 4)] == [0, 3, 4]
        assert gated.seen == [0, 3, 4]
        drops = [r for r in caplog.records if r.levelno == logging.WARNING and "dropped the oldest" in r.getMessage()]
        assert len(drops) == 2
        assert "'n': 1" in drops[0].getMessage()
        assert "'n': 2" in drops[1].getMessage()
    finally:
        gated.gate.set()
        assert bus.shutdown(timeout=WAIT) == 0


def test_overflow_block_waits_for_room_from_a_plain_thread() -> None:
    bus = EventBus(queue_size=1, overflow="block")
    gated = Gated(hold={0})
    timer = threading.Timer(0.2, gated.gate.set)
    try:
        bus.subscribe(Demo.PING, gated)
        futures = [_start_busy(bus, gated), bus.publish_nowait(_ev(1))]
        assert bus.stats()["queued"] == 1
        timer.start()
        futures.append(bus.publish_nowait(_ev(2)))  # blocks until the gate opens and n=1 is taken
        assert gated.gate.is_set()
        assert [f.result(WAIT).event.data["n"] for f in futures] == [0, 1, 2]
        assert gated.seen == [0, 1, 2]
        assert bus.stats()["rejected"] == 0
        assert bus.stats()["dropped"] == 0
    finally:
        timer.cancel()
        gated.gate.set()
        assert bus.shutdown(timeout=WAIT) == 0


def test_overflow_block_with_timeout_raises_when_no_room() -> None:
    bus = EventBus(queue_size=1, overflow="block")
    gated = Gated(hold={0})
    try:
        bus.subscribe(Demo.PING, gated)
        futures = [_start_busy(bus, gated), bus.publish_nowait(_ev(1))]
        started = time.perf_counter()
        with pytest.raises(QueueFullError, match=r"no room within 0\.2s"):
            bus.publish_nowait(_ev(2), timeout=0.2)
        elapsed = time.perf_counter() - started
        assert 0.19 <= elapsed < 1.5
        assert bus.stats()["rejected"] == 1
        gated.gate.set()
        assert [f.result(WAIT).event.data["n"] for f in futures] == [0, 1]
        assert gated.seen == [0, 1]
    finally:
        gated.gate.set()
        assert bus.shutdown(timeout=WAIT) == 0


def test_overflow_block_uses_the_bus_default_timeout() -> None:
    bus = EventBus(queue_size=1, overflow="block", timeout=0.2)
    gated = Gated(hold={0})
    try:
        # A long subscription timeout, so the watchdog leaves the gated receiver alone.
        bus.subscribe(Demo.PING, gated, timeout=30)
        futures = [_start_busy(bus, gated), bus.publish_nowait(_ev(1))]
        started = time.perf_counter()
        with pytest.raises(QueueFullError, match=r"no room within 0\.2s"):
            bus.publish_nowait(_ev(2))
        assert time.perf_counter() - started < 1.5
        gated.gate.set()
        assert [f.result(WAIT).event.data["n"] for f in futures] == [0, 1]
    finally:
        gated.gate.set()
        assert bus.shutdown(timeout=WAIT) == 0


@pytest.mark.asyncio
async def test_overflow_block_inside_a_running_loop_raises_at_once() -> None:
    bus = EventBus(queue_size=1, overflow="block")
    gated = Gated(hold={0})
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    try:
        bus.subscribe(Demo.PING, gated)
        first = bus.publish_nowait(_ev(0))
        assert await asyncio.to_thread(gated.started.wait, WAIT)
        second = bus.publish_nowait(_ev(1))
        started = time.perf_counter()
        with pytest.raises(QueueFullError, match="event loop"):
            bus.publish_nowait(_ev(2), timeout=5)  # "block" would wait up to 5 s here
        assert time.perf_counter() - started < 1.0
        assert bus.stats()["rejected"] == 1
        # The loop is alive: the ticker keeps going.
        before = ticks
        await asyncio.sleep(0.05)
        assert ticks > before
        gated.gate.set()
        reports = [await asyncio.wrap_future(f) for f in (first, second)]
        assert [r.event.data["n"] for r in reports] == [0, 1]
        assert gated.seen == [0, 1]
    finally:
        ticking.cancel()
        gated.gate.set()
        assert await asyncio.to_thread(bus.shutdown, WAIT) == 0


def test_shutdown_drains_everything_queued(bus: EventBus, gated: Gated) -> None:
    gated.hold = {0}
    bus.subscribe(Demo.PING, gated)
    futures = [_start_busy(bus, gated)]
    futures += [bus.publish_nowait(_ev(n)) for n in range(1, 21)]
    assert bus.stats()["queued"] == 20
    timer = threading.Timer(0.1, gated.gate.set)
    timer.start()
    try:
        assert bus.shutdown(timeout=WAIT) == 0
    finally:
        timer.cancel()
    assert gated.seen == list(range(21))
    assert all(f.done() for f in futures)
    assert [f.result(0).event.data["n"] for f in futures] == list(range(21))
    assert bus.stats()["queued"] == 0
    assert bus.stats()["dropped"] == 0


def test_shutdown_timeout_drops_what_is_still_queued(
    bus: EventBus, gated: Gated, caplog: pytest.LogCaptureFixture
) -> None:
    gated.hold = {0}
    bus.subscribe(Demo.PING, gated)
    first = _start_busy(bus, gated)
    queued = [bus.publish_nowait(_ev(n)) for n in (1, 2, 3)]
    with caplog.at_level(logging.ERROR, logger="blinker_events"):
        started = time.perf_counter()
        assert bus.shutdown(timeout=0.2) == 3
        assert time.perf_counter() - started < 1.5
    for future in queued:
        error = future.exception(0)
        assert isinstance(error, QueueFullError)
        assert "shut down" in str(error)
    assert bus.stats()["dropped"] == 3
    assert bus.stats()["queued"] == 0
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and "shutdown: dropped" in r.getMessage()]
    assert len(logged) == 3
    gated.gate.set()
    assert first.result(WAIT).event.data["n"] == 0
    assert gated.seen == [0]


def test_bus_is_usable_after_shutdown(bus: EventBus) -> None:
    seen: list[str] = []

    async def areceiver(event: Event) -> None:
        seen.append(f"async {event.data['n']}")

    bus.subscribe(Demo.PING, lambda event: seen.append(f"sync {event.data['n']}"))
    bus.subscribe(Demo.PING, areceiver)
    assert len(bus.publish_nowait(_ev(1)).result(WAIT).succeeded) == 2
    assert bus.shutdown(timeout=WAIT) == 0
    assert len(bus.publish_nowait(_ev(2)).result(WAIT).succeeded) == 2
    assert len(bus.publish_sync(_ev(3)).succeeded) == 2
    assert seen == ["sync 1", "async 1", "sync 2", "async 2", "sync 3", "async 3"]


def test_context_variables_travel_to_the_worker(bus: EventBus) -> None:
    seen: list[tuple[str, int]] = []

    async def areceiver(event: Event) -> None:
        seen.append((f"async:{CTX.get()}", threading.get_ident()))

    bus.subscribe(Demo.PING, lambda event: seen.append((f"sync:{CTX.get()}", threading.get_ident())))
    bus.subscribe(Demo.PING, areceiver)
    token = CTX.set("publisher")
    try:
        future = bus.publish_nowait(_ev(0))
    finally:
        CTX.reset(token)
    future.result(WAIT)
    assert [label for label, _ in seen] == ["sync:publisher", "async:publisher"]
    assert threading.get_ident() not in {tid for _, tid in seen}


def test_a_burst_of_queued_events_reaches_async_receivers_each_in_its_own_publishers_context(bus: EventBus) -> None:
    # The bus loop takes queued jobs in batches; each job's task must still
    # run in a copy of that job's publisher context, and what one receiver
    # sets there must not leak into the next job's.
    seen: list[tuple[int, str]] = []

    async def areceiver(event: Event) -> None:
        seen.append((event.data["n"], CTX.get()))
        CTX.set("changed by a receiver")
        await asyncio.sleep(0)

    bus.subscribe(Demo.PING, areceiver)
    futures = []
    for n in range(300):
        token = CTX.set(f"publisher {n}")
        try:
            futures.append(bus.publish_nowait(_ev(n)))
        finally:
            CTX.reset(token)
    assert [len(f.result(WAIT).succeeded) for f in futures] == [1] * 300
    assert seen == [(n, f"publisher {n}") for n in range(300)]
    assert CTX.get() == "unset"


def _hold_the_bus_loop(bus: EventBus, gate: threading.Event) -> None:
    """Queue an event whose async receiver blocks the bus loop's thread
    itself until ``gate`` opens; return once it does."""
    holding = threading.Event()

    async def hog(event: Event) -> None:
        holding.set()
        gate.wait(HANG)  # blocks the loop, not just this task

    bus.subscribe(Demo.OTHER, hog)
    bus.publish_nowait(Event(Demo.OTHER))
    assert holding.wait(WAIT)


def _posted_by_the_worker(bus: EventBus, n: int) -> tuple[list[Future[DeliveryReport]], Any]:
    """Queue ``n`` events, each to a sync and an async receiver, and return
    once the worker has run every sync one: (their futures, the async
    receiver's subscription). Each event's async half is handed to the bus
    loop right after its sync half, so all of them are then waiting there."""
    ran: list[int] = []
    bus.subscribe(Demo.PING, lambda event: ran.append(event.data["n"]))

    async def areceiver(event: Event) -> None:
        await asyncio.sleep(0)

    sub = bus.subscribe(Demo.PING, areceiver)
    futures = [bus.publish_nowait(_ev(k)) for k in range(n)]
    assert wait_until(lambda: len(ran) == n, WAIT)
    return futures, sub


def test_a_burst_waiting_on_the_bus_loop_starts_a_few_at_a_time_in_publish_order(
    bus: EventBus, gate: threading.Event
) -> None:
    # Started all at once, a burst's thousands of tasks would all be alive
    # together, and the loop's other work would wait behind them.
    _hold_the_bus_loop(bus, gate)
    started: list[int] = []
    running = [0, 0]  # now, most at once

    async def areceiver(event: Event) -> None:
        started.append(event.data["n"])
        running[0] += 1
        running[1] = max(running)
        await asyncio.sleep(0)
        running[0] -= 1

    sub = bus.subscribe(Demo.PING, areceiver)
    futures = [bus.publish_nowait(_ev(n)) for n in range(500)]
    assert wait_until(lambda: bus.stats()["queued"] == 0, WAIT)
    gate.set()
    assert [f.result(WAIT).succeeded for f in futures] == [[sub]] * 500
    assert started == list(range(500))
    assert running[1] <= 64  # a few turns' worth of 16, where all 500 used to start together


def test_a_stop_that_gives_up_still_settles_what_waited_on_the_bus_loop(bus: EventBus, gate: threading.Event) -> None:
    # The shutdown's time is up while the bus loop is held: the deliveries
    # waiting there are cancelled when the loop stops, each future settled
    # with its report -- those the loop had not started yet too.
    _hold_the_bus_loop(bus, gate)
    futures, sub = _posted_by_the_worker(bus, 100)
    bus.shutdown(timeout=0.2)
    gate.set()
    reports = [f.result(WAIT) for f in futures]
    assert [r.cancelled for r in reports] == [[sub]] * 100
    assert [len(r.succeeded) for r in reports] == [1] * 100  # the sync receiver
    assert len(bus.get_history(Demo.PING)) == 100


def test_disable_enable_while_worker_busy(bus: EventBus, gated: Gated) -> None:
    gated.hold = {0}
    sub = bus.subscribe(Demo.PING, gated)
    futures = [_start_busy(bus, gated), bus.publish_nowait(_ev(1)), bus.publish_nowait(_ev(2))]
    bus.disable()
    ignored = bus.publish_nowait(_ev(3))
    assert ignored.done()
    assert ignored.result(0).succeeded == []
    gated.gate.set()
    # Already queued events are still delivered while disabled.
    assert [f.result(WAIT).succeeded for f in futures] == [[sub], [sub], [sub]]
    bus.enable()
    assert bus.publish_nowait(_ev(4)).result(WAIT).succeeded == [sub]
    assert gated.seen == [0, 1, 2, 4]
    # disable/enable again with the worker idle: it still starts on demand.
    bus.disable()
    bus.enable()
    assert bus.publish_nowait(_ev(5)).result(WAIT).succeeded == [sub]
    assert gated.seen == [0, 1, 2, 4, 5]


def test_queue_settings_do_not_leak_between_buses(bus: EventBus) -> None:
    small = EventBus(queue_size=1, overflow="raise")
    gated = Gated(hold={0})
    seen: list[int] = []
    try:
        small.subscribe(Demo.PING, gated)
        _start_busy(small, gated)
        small.publish_nowait(_ev(1))
        with pytest.raises(QueueFullError):
            small.publish_nowait(_ev(2))
        # The other bus, with default settings, takes 50 events while the small one is full.
        bus.subscribe(Demo.PING, lambda event: seen.append(event.data["n"]))
        futures = [bus.publish_nowait(_ev(n)) for n in range(50)]
        assert all(len(f.result(WAIT).succeeded) == 1 for f in futures)
        assert seen == list(range(50))
        assert bus.stats()["rejected"] == 0
        assert bus.stats()["dropped"] == 0
        assert small.stats()["rejected"] == 1
    finally:
        gated.gate.set()
        assert small.shutdown(timeout=WAIT) == 0
    assert gated.seen == [0, 1]


def test_overflow_block_on_the_worker_itself_raises_instead_of_deadlocking() -> None:
    bus = EventBus(queue_size=1, overflow="block")
    outcome: list[object] = []

    def republish(event: Event) -> None:
        outcome.append(bus.publish_nowait(Event(Demo.PONG, {"n": 1})))  # fills the queue
        try:
            bus.publish_nowait(Event(Demo.PONG, {"n": 2}), timeout=5)
        except QueueFullError as exc:
            outcome.append(exc)

    pongs: list[int] = []
    try:
        bus.subscribe(Demo.PING, republish)
        bus.subscribe(Demo.PONG, lambda event: pongs.append(event.data["n"]))
        started = time.perf_counter()
        report = bus.publish_nowait(_ev(0)).result(WAIT)
        assert time.perf_counter() - started < 1.0
        assert len(report.succeeded) == 1
        assert len(outcome) == 2
        assert isinstance(outcome[0], Future)
        assert isinstance(outcome[1], QueueFullError)
        assert "worker itself" in str(outcome[1])
        assert outcome[0].result(WAIT).event.data["n"] == 1
        assert pongs == [1]
        assert bus.stats()["rejected"] == 1
    finally:
        assert bus.shutdown(timeout=WAIT) == 0


def test_propagation_resolves_future_to_an_async_receivers_exception() -> None:
    bus = EventBus(propagate_exceptions=True)
    boom = ValueError("async boom")

    async def bad(event: Event) -> None:
        await asyncio.sleep(0)
        raise boom

    try:
        bus.subscribe(Demo.PING, bad)
        assert bus.publish_nowait(_ev(0)).exception(WAIT) is boom
    finally:
        assert bus.shutdown(timeout=WAIT) == 0


def test_shutdown_drains_async_receivers_of_queued_events(bus: EventBus) -> None:
    done: list[int] = []

    async def slow(event: Event) -> None:
        await asyncio.sleep(0.1)
        done.append(event.data["n"])

    sub = bus.subscribe(Demo.PING, slow)
    futures = [bus.publish_nowait(_ev(n)) for n in range(3)]
    assert bus.shutdown(timeout=WAIT) == 0
    assert sorted(done) == [0, 1, 2]
    assert [f.result(1).succeeded for f in futures] == [[sub], [sub], [sub]]


def test_pool_threads_are_reused_after_shutdown(bus: EventBus) -> None:
    threads: list[threading.Thread] = []
    bus.subscribe(Demo.PING, lambda event: threads.append(threading.current_thread()))

    def four_publishes() -> int:
        threads.clear()
        for n in range(4):
            bus.publish_nowait(_ev(n)).result(WAIT)
            time.sleep(0.05)  # the worker thread is back in the pool by now
        return len(set(threads))

    assert four_publishes() == 1
    assert bus.shutdown(timeout=WAIT) == 0
    assert four_publishes() == 1


def test_block_on_the_replacement_worker_thread_raises_at_once() -> None:
    bus = EventBus(queue_size=1, overflow="block")
    release = threading.Event()
    outcome: list[object] = []

    def hang(event: Event) -> None:
        release.wait(WAIT)

    def republish(event: Event) -> None:
        # Runs on the thread that replaced the hung one: it is the worker now.
        outcome.append(bus.publish_nowait(Event(Demo.PONG)))  # fills the queue
        try:
            bus.publish_nowait(Event(Demo.PONG), timeout=0.5)
        except QueueFullError as exc:
            outcome.append(exc)

    try:
        bus.subscribe(Demo.PING, hang, timeout=0.2)
        bus.subscribe(Demo.PING, republish)
        report = bus.publish_nowait(_ev(0)).result(WAIT)
        assert len(report.timed_out) == 1
        assert len(outcome) == 2
        assert isinstance(outcome[1], QueueFullError)
        assert "worker itself" in str(outcome[1])
    finally:
        release.set()
        assert bus.shutdown(timeout=WAIT) == 0


def test_a_run_moved_off_a_hung_receiver_leaves_no_event_behind() -> None:
    # The receiver overruns, its run moves to another thread; once all
    # is done, neither thread nor the watchdog may keep the event.
    bus = EventBus(history_size=0, timeout=0.1)
    bus.subscribe(Demo.PING, lambda event: time.sleep(0.3))
    event, ref = event_holding_a_component()
    report = bus.publish_nowait(event).result(5)
    assert len(report.timed_out) == 1
    del event, report
    time.sleep(0.4)  # the hung receiver returns, its thread goes idle
    assert all_collected([ref])
    assert bus.shutdown(timeout=10) == 0


def test_a_job_whose_run_moved_off_a_hung_receiver_stops_being_in_flight_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The moved run settles its job on the thread it moved to, which then
    # drains on: that drain loop takes the job off the in-flight set, or a
    # shutdown would wait its whole bound for a job already delivered.
    bus = EventBus(history_size=0, timeout=0.1)
    release = threading.Event()
    bus.subscribe(Demo.PING, lambda event: event.data["n"] == 0 and release.wait(WAIT))
    first, second = bus.publish_nowait(_ev(0)), bus.publish_nowait(_ev(1))
    assert len(first.result(WAIT).timed_out) == 1
    assert len(second.result(WAIT).succeeded) == 1
    try:
        started = time.perf_counter()
        assert bus.shutdown(timeout=3) == 0
        assert time.perf_counter() - started < 2.0  # not the 3 s bound
        assert log_records(caplog, logging.WARNING, "still being delivered") == []
    finally:
        release.set()


@pytest.mark.parametrize("receivers", ["sync", "sync and async"])
def test_a_flood_of_queued_events_leaves_nothing_in_flight(receivers: str, caplog: pytest.LogCaptureFixture) -> None:
    # Jobs settled by the drain loop leave the in-flight set in its next
    # lock round, jobs with async receivers when the bus loop settles them:
    # either way, once every future resolved, nothing is left to wait for.
    bus = EventBus(history_size=10, queue_size=50)  # a full queue: publishers wait for room
    calls = [0, 0]

    def sync_receiver(event: Event) -> None:
        calls[0] += 1

    async def async_receiver(event: Event) -> None:
        calls[1] += 1

    bus.subscribe(Demo.PING, sync_receiver)
    if receivers == "sync and async":
        bus.subscribe(Demo.PING, async_receiver)
    futures = [bus.publish_nowait(_ev(n)) for n in range(2000)]
    assert all(len(future.result(WAIT).succeeded) == len(bus.get_subscriptions(Demo.PING)) for future in futures)
    started = time.perf_counter()
    assert bus.shutdown(timeout=3) == 0
    assert time.perf_counter() - started < 2.0  # not the 3 s bound
    assert calls == [2000, 2000 if receivers == "sync and async" else 0]
    assert log_records(caplog, logging.WARNING, "still being delivered") == []


def test_run_moved_off_a_hung_receiver_keeps_the_async_receivers_met_before(
    new_bus: BusFactory, release: threading.Event
) -> None:
    """Used to: when the watchdog moved a ``publish_nowait`` run off a hung sync
    receiver, the async receivers collected before it were dropped: never
    called, and missing from the report."""
    bus = new_bus(timeout=0.2)
    called: list[str] = []

    async def early(e: Event) -> None:
        called.append("early-async")

    def late(e: Event) -> None:
        called.append("late-sync")

    a = bus.subscribe(Demo.PING, early)
    b = bus.subscribe(Demo.PING, lambda e: release.wait(10))
    c = bus.subscribe(Demo.PING, late)

    report = bus.publish_nowait(Event(Demo.PING)).result(timeout=1.5)

    assert sorted(called) == ["early-async", "late-sync"]
    assert sorted(s.id for s in report.succeeded) == sorted([a.id, c.id])
    assert report.timed_out == [b]
    assert (list(report.failed), list(report.skipped)) == ([], [])


def test_cancelled_queued_publish_nowait_is_skipped_and_shutdown_stays_prompt(bus: EventBus) -> None:
    """Used to: cancelling a queued ``publish_nowait`` future corrupted the
    in-flight count, so ``shutdown(timeout=1)`` waited the full second (and
    ``shutdown()`` without a timeout would hang forever)."""
    gate = threading.Event()
    calls: list[Event] = []

    def receiver(e: Event) -> None:
        calls.append(e)
        gate.wait(2)

    bus.subscribe(Demo.PING, receiver)
    first = bus.publish_nowait(Event(Demo.PING))  # occupies the worker
    second = Event(Demo.PING)
    queued = bus.publish_nowait(second)
    assert queued.cancel() is True
    gate.set()
    assert first.result(timeout=2).ok

    started = time.perf_counter()
    assert bus.shutdown(timeout=1) == 0
    assert time.perf_counter() - started < 0.5
    assert second not in calls
    assert len(calls) == 1
    assert bus.stats()["queued"] == 0

    later = bus.publish_nowait(Event(Demo.PING)).result(timeout=2)
    assert len(later.succeeded) == 1
    assert len(calls) == 2


# failure mode 9: the block overflow policy
@pytest.mark.asyncio
async def test_block_overflow_in_a_coroutine_does_not_freeze_the_loop(gate: threading.Event) -> None:
    """Under a "block" overflow policy a blocking `queue.put` ran inside a
    coroutine and froze the event loop."""
    bus = EventBus(queue_size=1, overflow="block")
    started = threading.Event()
    try:

        def slow(event: Event) -> None:
            started.set()
            gate.wait(HANG)

        bus.subscribe(Demo.PING, slow)
        first = bus.publish_nowait(Event(Demo.PING))
        assert await asyncio.to_thread(started.wait, WAIT)
        queued = bus.publish_nowait(Event(Demo.PING))  # fills the queue
        assert bus.stats()["queued"] == 1

        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        await asyncio.sleep(0.03)
        t0 = time.monotonic()
        with pytest.raises(QueueFullError, match="event loop"):
            bus.publish_nowait(Event(Demo.PING), timeout=HANG)
        assert time.monotonic() - t0 < 1.0  # raised at once, did not wait the 3 s block timeout
        before = ticks
        await asyncio.sleep(0.05)
        assert ticks > before  # the loop keeps running
        tick_task.cancel()
        assert bus.stats()["rejected"] == 1

        gate.set()
        assert (await asyncio.wrap_future(first)).ok
        assert (await asyncio.wrap_future(queued)).ok
    finally:
        gate.set()
        assert bus.shutdown(timeout=10) == 0


# failure mode 9 (companion)
def test_block_overflow_from_a_plain_thread_waits_for_room(gate: threading.Event) -> None:
    """Companion: outside a loop, "block" really blocks -- until room is made, or
    until the timeout, then QueueFullError (counted)."""
    bus = EventBus(queue_size=1, overflow="block")
    try:
        seen, first = hold_the_worker(bus, gate, first=1)
        second = bus.publish_nowait(Event(Demo.PING, {"n": 2}))
        t0 = time.monotonic()
        with pytest.raises(QueueFullError, match="no room within"):
            bus.publish_nowait(Event(Demo.PING, {"n": 99}), timeout=0.2)
        assert 0.15 < time.monotonic() - t0 < 1.5
        assert bus.stats()["rejected"] == 1

        threading.Timer(0.1, gate.set).start()
        third = bus.publish_nowait(Event(Demo.PING, {"n": 3}), timeout=WAIT)  # blocks until room
        assert [f.result(WAIT).ok for f in (first, second, third)] == [True, True, True]
        assert seen == [1, 2, 3]
    finally:
        gate.set()
        assert bus.shutdown(timeout=10) == 0


# failure mode 18: disable() then enable() while the worker is busy
def test_disable_then_enable_while_the_worker_is_busy_keeps_it_running(bus: EventBus, gate: threading.Event) -> None:
    """`disable()` then `enable()` while the worker was busy stopped the worker
    forever; `disable()` held the bus lock while joining the worker."""
    seen, first = hold_the_worker(bus, gate, first=1)
    queued = bus.publish_nowait(Event(Demo.PING, {"n": 2}))

    outcome: dict[str, Any] = {}

    def toggle() -> None:
        bus.disable()
        # the bus lock is free while disabled and the worker busy
        outcome["sub"] = bus.subscribe(Demo.PONG, lambda e: None)
        outcome["while_disabled"] = bus.publish_nowait(Event(Demo.PING, {"n": 99}))
        bus.enable()

    helper = threading.Thread(target=toggle)
    helper.start()
    helper.join(2.0)
    assert not helper.is_alive()  # neither call waited for the busy worker
    while_disabled = outcome["while_disabled"]
    assert while_disabled.done() is True
    assert while_disabled.result().succeeded == []

    gate.set()
    assert first.result(WAIT).ok
    assert queued.result(WAIT).ok  # queued before disable(): still delivered
    later = bus.publish_nowait(Event(Demo.PING, {"n": 3}))
    assert later.result(WAIT).ok  # the worker is alive
    assert seen == [1, 2, 3]
    assert bus.get_subscriptions(Demo.PONG) == [outcome["sub"]]


def test_a_dropped_event_whose_repr_is_interrupted_still_fails_its_future(gate: threading.Event) -> None:
    # Ctrl-C while the dropped event is described (a __repr__ raising
    # KeyboardInterrupt stands for it): the interrupt goes on to the
    # publisher, as describe() promises, but the dropped event's future
    # fails with QueueFullError and the queue goes on working.
    class Interrupting:
        def __repr__(self) -> str:
            raise KeyboardInterrupt

    bus = EventBus(queue_size=1, overflow="drop_oldest")
    try:
        seen, _ = hold_the_worker(bus, gate, first=0)
        doomed = bus.publish_nowait(Event(Demo.PING, {"n": 1, "x": Interrupting()}))
        with pytest.raises(KeyboardInterrupt):
            bus.publish_nowait(Event(Demo.PING, {"n": 2}))
        assert isinstance(doomed.exception(WAIT), QueueFullError)
        assert bus.stats()["dropped"] == 1
        gate.set()
        assert wait_until(lambda: seen == [0, 2])  # the event queued by the interrupted call
        assert bus.publish_nowait(Event(Demo.PING, {"n": 3})).result(WAIT).ok
        assert seen == [0, 2, 3]
    finally:
        gate.set()
        assert bus.shutdown(timeout=10) == 0


# failure mode 20: queue overflow
def test_queue_overflow_is_reported_and_counted(gate: threading.Event, caplog: pytest.LogCaptureFixture) -> None:
    """A queue overflow dropped events with only a log line; a test that shrank the
    queue leaked that setting into later tests, which then lost 48 of 50 events."""
    bus = EventBus(queue_size=2, overflow="drop_oldest")
    try:
        seen, held = hold_the_worker(bus, gate, first=0)
        futures = [held] + [bus.publish_nowait(Event(Demo.PING, {"n": n})) for n in (1, 2, 3)]

        # the oldest queued event (n=1) was dropped: counted, logged, its future failed
        assert bus.stats()["dropped"] == 1
        with pytest.raises(QueueFullError, match="dropped"):
            futures[1].result(WAIT)
        assert len(log_records(caplog, logging.WARNING, "dropped the oldest")) == 1
        gate.set()
        assert [f.result(WAIT).ok for f in (futures[0], futures[2], futures[3])] == [True, True, True]
        assert seen == [0, 2, 3]
    finally:
        gate.set()
        assert bus.shutdown(timeout=10) == 0

    rejecting = EventBus(queue_size=1, overflow="raise")
    started = threading.Event()
    gate.clear()
    try:
        rejecting.subscribe(Demo.PING, lambda e: (started.set(), gate.wait(HANG)))
        first = rejecting.publish_nowait(Event(Demo.PING))
        assert started.wait(WAIT)
        second = rejecting.publish_nowait(Event(Demo.PING))
        with pytest.raises(QueueFullError, match="overflow='raise'"):
            rejecting.publish_nowait(Event(Demo.PING))
        assert rejecting.stats()["rejected"] == 1
        gate.set()
        assert [first.result(WAIT).ok, second.result(WAIT).ok] == [True, True]
    finally:
        gate.set()
        assert rejecting.shutdown(timeout=10) == 0


# failure mode 20 (same bullet)
def test_a_fresh_bus_has_the_default_queue_size(bus: EventBus, gate: threading.Event) -> None:
    """(same bullet) A fresh bus -- the fixture of the next test -- has the default
    queue however small another bus's was: 50 events queued behind a busy
    worker are all delivered."""
    small = EventBus(queue_size=2, overflow="raise")
    assert small.shutdown(timeout=10) == 0
    seen, held = hold_the_worker(bus, gate, first=0)
    futures = [held] + [bus.publish_nowait(Event(Demo.PING, {"n": n})) for n in range(1, 50)]
    assert bus.stats()["queued"] == 49
    gate.set()
    assert [f.result(WAIT).ok for f in futures] == [True] * 50
    assert seen == list(range(50))
    assert (bus.stats()["dropped"], bus.stats()["rejected"]) == (0, 0)


def test_publish_nowait_returns_a_concurrent_future(bus: EventBus) -> None:
    """publish_nowait hands back a concurrent.futures.Future (usable from any thread)."""
    future = bus.publish_nowait(Event(Demo.PING))
    assert isinstance(future, Future)
    assert future.result(WAIT).succeeded == []


class _EmptyThenRace(deque[Any]):
    """The worker's deque, which -- once ``arm``-ed -- lets ``publisher``
    run to its end at the moment the drainer finds the deque empty, before
    the drainer clears the drain's owner: the interleaving a thread switch
    (or a second core, without a GIL) can make there."""

    publisher: threading.Thread | None = None
    raced = threading.Event()

    def popleft(self) -> Any:
        try:
            return super().popleft()
        except IndexError:
            publisher, self.publisher = self.publisher, None
            if publisher is not None:
                publisher.start()
                publisher.join(WAIT)  # it appends, sees the drain still owned, and leaves the event to it
                self.raced.set()
            raise


def test_an_event_published_as_the_drain_ends_is_delivered(bus: EventBus) -> None:
    # The publishers and the drainer take different locks, so a publisher
    # can append just as the drainer finds the deque empty, and see the
    # drain still owned: the drainer must look once more and take it back.
    racing = bus._queue._jobs = _EmptyThenRace()
    racing.raced = threading.Event()
    late: list[Future[DeliveryReport]] = []
    seen: list[int] = []

    def receiver(event: Event) -> None:
        seen.append(event.data["n"])
        if event.data["n"] == 1:  # armed for the drain's next look, once this job is done
            racing.publisher = threading.Thread(target=lambda: late.append(bus.publish_nowait(_ev(2))))

    sub = bus.subscribe(Demo.PING, receiver)
    bus.publish_nowait(_ev(1)).result(WAIT)
    assert racing.raced.wait(WAIT)
    assert len(late) == 1
    assert late[0].result(WAIT).succeeded == [sub]
    assert seen == [1, 2]


class _IdleThenPublish(threading.Condition):
    """The worker's "queue is idle" condition, which -- once ``arm``-ed --
    lets ``publisher`` queue its event the moment a shutdown has seen the
    queue idle, before the shutdown looks at what is left: the interleaving
    a thread switch can make there."""

    publisher: threading.Thread | None = None
    queued: Callable[[], int] = staticmethod(lambda: 0)

    def wait_for(self, predicate: Any, timeout: float | None = None) -> bool:
        idle = super().wait_for(predicate, timeout)
        publisher, self.publisher = self.publisher, None
        if idle and publisher is not None:
            publisher.start()
            assert wait_until(lambda: self.queued() == 1)  # queued; its drain waits for this lock
        return idle


def test_a_publish_that_comes_in_as_a_shutdown_finds_the_queue_idle_is_delivered_not_dropped(
    bus: EventBus,
) -> None:
    seen: list[int] = []
    bus.subscribe(Demo.PING, lambda event: seen.append(event.data["n"]))
    queue = bus._queue
    idle = queue._empty = _IdleThenPublish(queue._lock)
    idle.queued = lambda: len(queue)
    late: list[Future[DeliveryReport]] = []
    publisher = threading.Thread(target=lambda: late.append(bus.publish_nowait(_ev(2))))
    bus.publish_nowait(_ev(1)).result(WAIT)
    idle.publisher = publisher
    assert bus.shutdown() == 0  # no bound: nothing is dropped
    publisher.join(WAIT)
    assert late[0].result(WAIT).ok
    assert seen == [1, 2]


def test_a_withdrawn_event_that_drop_oldest_takes_off_is_recorded_as_withdrawn_not_dropped(
    new_bus: BusFactory, gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(queue_size=1, overflow="drop_oldest")
    seen, first = hold_the_worker(bus, gate, first=1)
    withdrawn = bus.publish_nowait(_ev(2))
    assert withdrawn.cancel()
    third = bus.publish_nowait(_ev(3))  # the queue is full of the withdrawn event: it makes room
    gate.set()
    assert third.result(WAIT).ok
    assert first.result(WAIT).ok
    assert seen == [1, 3]
    assert bus.stats()["dropped"] == 0
    assert log_records(caplog, logging.WARNING, "dropped") == []
    (sub,) = bus.get_subscriptions(Demo.PING)
    reports = {report.event.data["n"]: report for report in bus.get_delivery_reports()}
    assert reports[2].cancelled == [sub]
    assert reports[2].succeeded == []


def test_a_withdrawn_event_still_queued_at_a_shutdown_is_recorded_as_withdrawn_not_dropped(
    bus: EventBus, gate: threading.Event
) -> None:
    seen, first = hold_the_worker(bus, gate, first=1)
    withdrawn = bus.publish_nowait(_ev(2))
    dropped = bus.publish_nowait(_ev(3))
    assert withdrawn.cancel()
    assert bus.shutdown(timeout=0.2) == 1  # the event still queued; not the withdrawn one
    assert isinstance(dropped.exception(WAIT), QueueFullError)
    gate.set()
    assert first.result(WAIT).ok
    assert seen == [1]
    assert bus.stats()["dropped"] == 1
    (sub,) = bus.get_subscriptions(Demo.PING)
    assert [(r.event.data["n"], r.cancelled) for r in bus.get_delivery_reports() if r.event.data["n"] == 2] == [
        (2, [sub])
    ]


def test_cancelling_queued_events_as_drop_oldest_takes_them_off_never_fails_the_publish(new_bus: BusFactory) -> None:
    # A drop claims the future before it fails it, so a cancel racing the
    # drop either withdraws the event or comes too late; before, the drop
    # could fail a future cancelled in between, raising InvalidStateError
    # out of the publisher's publish_nowait. A tiny switch interval makes
    # the two threads interleave inside those few lines.
    bus = new_bus(queue_size=1, overflow="drop_oldest", history_size=0)
    release = threading.Event()
    bus.subscribe(Demo.PING, lambda event: release.wait(WAIT) if event.data["n"] == 0 else None)
    held = bus.publish_nowait(_ev(0))
    assert wait_until(lambda: bus.stats()["queued"] == 0)  # the worker holds it
    futures: deque[Future[DeliveryReport]] = deque(maxlen=2)
    done = threading.Event()

    def cancel_the_newest() -> None:
        while not done.is_set():
            for future in list(futures):
                future.cancel()

    canceller = threading.Thread(target=cancel_the_newest)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    canceller.start()
    try:
        for n in range(1, 20_000):
            futures.append(bus.publish_nowait(_ev(n)))
    finally:
        done.set()
        sys.setswitchinterval(interval)
        canceller.join(WAIT)
        release.set()
    assert held.result(WAIT).ok


def test_a_publisher_waiting_for_room_is_let_in_when_the_queue_is_made_bigger(
    new_bus: BusFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It used to look again only once a second (the hand-off check) or at
    # its own deadline; the hand-off is put far off so only a wake-up lets it in.
    monkeypatch.setattr("blinker_events._worker.HANDOFF_SECONDS", 60.0)
    bus = new_bus(queue_size=1, overflow="block")
    held, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def receiver(event: Event) -> None:
        if event.data["n"] == 1:
            held.set()
            release.wait(30)  # longer than the publish below may wait
        seen.append(event.data["n"])

    bus.subscribe(Demo.PING, receiver)
    first = bus.publish_nowait(_ev(1))
    assert held.wait(WAIT)
    queued = bus.publish_nowait(_ev(2))  # the queue is full now
    threading.Timer(0.2, bus.set_queue_size, args=(2,)).start()
    started = time.perf_counter()
    try:
        waited = bus.publish_nowait(_ev(3), timeout=10.0)  # blocks for room
        assert time.perf_counter() - started < 5.0  # well before its 10 s deadline
    finally:
        release.set()
    assert [f.result(WAIT).ok for f in (first, queued, waited)] == [True, True, True]
    assert seen == [1, 2, 3]


def test_a_publisher_waiting_for_room_is_let_in_by_the_first_job_the_worker_takes(
    new_bus: BusFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Woken only once the queue was down to half, a publisher with a short
    # timeout was refused while the slot the worker freed stood empty. The
    # hand-off's once-a-second look is put far off: only the wake-up counts.
    monkeypatch.setattr("blinker_events._worker.HANDOFF_SECONDS", 60.0)
    bus = new_bus(queue_size=10, overflow="block")
    holding = {1: threading.Event(), 2: threading.Event()}
    held = {n: threading.Event() for n in holding}
    seen: list[int] = []

    def receiver(event: Event) -> None:
        n = event.data["n"]
        if n in holding:
            held[n].set()
            holding[n].wait(30)
        seen.append(n)

    bus.subscribe(Demo.PING, receiver)
    futures = [bus.publish_nowait(_ev(1))]
    assert held[1].wait(WAIT)
    futures += [bus.publish_nowait(_ev(n)) for n in range(2, 12)]  # ten queued: full
    outcome: list[object] = []
    waiter = threading.Thread(target=lambda: outcome.append(bus.publish_nowait(_ev(12), timeout=10.0)))
    waiter.start()
    try:
        assert wait_until(lambda: waiter.is_alive() and bus.stats()["queued"] == 10)
        holding[1].set()  # the worker takes 2 (one slot free) and holds it
        assert held[2].wait(WAIT)
        waiter.join(5.0)  # well before its 10 s deadline, with the worker still held
        assert not waiter.is_alive()
        assert bus.stats()["queued"] == 10
    finally:
        holding[1].set()
        holding[2].set()
        waiter.join(WAIT)
    futures += [f for f in outcome if isinstance(f, Future)]
    assert [f.result(WAIT).ok for f in futures] == [True] * 12
    assert seen == list(range(1, 13))


def test_a_publisher_waiting_for_room_is_let_in_when_a_shutdown_drops_the_queue(
    new_bus: BusFactory, monkeypatch: pytest.MonkeyPatch, gate: threading.Event
) -> None:
    # The shutdown's time is up behind a hung receiver: what is queued is
    # dropped, which frees its slots at once, and a publisher waiting for
    # room gets in then -- not at its own deadline or the next hand-off
    # (found from outside: it waited about a second with the queue empty).
    monkeypatch.setattr("blinker_events._worker.HANDOFF_SECONDS", 60.0)
    bus = new_bus(queue_size=1, overflow="block")
    seen, first = hold_the_worker(bus, gate, first=1)
    dropped = bus.publish_nowait(_ev(2))  # the queue is full now
    outcome: list[Future[DeliveryReport]] = []
    waiter = threading.Thread(target=lambda: outcome.append(bus.publish_nowait(_ev(3), timeout=10.0)))
    waiter.start()
    assert wait_until(lambda: waiter.is_alive() and bus.stats()["queued"] == 1)
    time.sleep(0.1)  # into its wait for room
    assert bus.shutdown(timeout=0.1) == 1
    waiter.join(5.0)  # well before its 10 s deadline, with the worker still held
    assert not waiter.is_alive()
    assert isinstance(dropped.exception(WAIT), QueueFullError)
    gate.set()
    assert [first.result(WAIT).ok, outcome[0].result(WAIT).ok] == [True, True]
    assert seen == [1, 3]
