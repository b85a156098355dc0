"""The worker queue keeps flowing: past a hung receiver, when every pool
thread waits on it, and when a receiver waits on a thread that publishes
into the full queue. Nothing queued is stranded or overtaken."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future

import pytest

from blinker_events import DeliveryReport, Event, EventBus
from blinker_events._threads import MAX_THREADS

from .conftest import Demo

WAIT = 5.0  # upper bound for waits that normally end at once


def _ev(n: int) -> Event:
    return Event(Demo.PING, {"n": n})


class HangsOnOne:
    """Records the start of each dispatch; holds n=0 on a gate (a receiver
    that is slow, not hung), and hangs on n=1 until ``release`` is set."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.gate = threading.Event()
        self.inside = {0: threading.Event(), 1: threading.Event()}
        self.release = threading.Event()

    def __call__(self, event: Event) -> None:
        n = event.data["n"]
        self.starts.append(n)
        if n == 0:
            self.inside[0].set()
            self.gate.wait(WAIT)
        elif n == 1:
            self.inside[1].set()
            self.release.wait(WAIT)


def _queue_behind_a_hung_receiver(bus: EventBus, receiver: HangsOnOne) -> list[Future[DeliveryReport]]:
    """n=0 holds the drainer while 1..20 queue up; then n=1 hangs with the
    rest of what the drainer took still to run, and 21..30 arrive after."""
    bus.subscribe(Demo.PING, receiver, timeout=0.2)
    futures = [bus.publish_nowait(_ev(0), timeout=30)]  # slow, but within its timeout
    assert receiver.inside[0].wait(WAIT)
    futures += [bus.publish_nowait(_ev(n)) for n in range(1, 21)]
    receiver.gate.set()
    assert receiver.inside[1].wait(WAIT)
    futures += [bus.publish_nowait(_ev(n)) for n in range(21, 31)]
    return futures


def test_events_queued_behind_a_hung_receiver_start_in_publish_order_at_its_deadline(bus: EventBus) -> None:
    receiver = HangsOnOne()
    try:
        futures = _queue_behind_a_hung_receiver(bus, receiver)
        reports = [future.result(WAIT) for future in futures]
        assert [len(report.timed_out) for report in reports] == [0, 1] + [0] * 29
        assert [len(report.succeeded) for report in reports] == [1, 0] + [1] * 29
        assert receiver.starts == list(range(31))
    finally:
        receiver.release.set()


def test_shutdown_without_timeout_delivers_what_was_queued_behind_a_hung_receiver(bus: EventBus) -> None:
    receiver = HangsOnOne()
    try:
        futures = _queue_behind_a_hung_receiver(bus, receiver)
        assert bus.shutdown(timeout=None) == 0
        assert all(future.done() for future in futures)
        assert [future.result(0).event.data["n"] for future in futures] == list(range(31))
        assert receiver.starts == list(range(31))
        assert bus.stats()["dropped"] == 0
        assert bus.stats()["queued"] == 0
    finally:
        receiver.release.set()


@pytest.mark.asyncio
async def test_the_worker_is_served_while_every_pool_thread_waits_on_it(bus: EventBus) -> None:
    pongs: list[int] = []
    waits = MAX_THREADS + 6
    all_busy = threading.Barrier(MAX_THREADS)

    def waits_on_the_worker(event: Event) -> None:
        # A sync receiver of ``await publish`` (a pool thread) that, once
        # every pool thread is here, waits for a queued publish: only a pool
        # thread can deliver it.
        if event.data["n"] < MAX_THREADS:
            all_busy.wait(WAIT)
        bus.publish_nowait(Event(Demo.PONG, {"n": event.data["n"]})).result(WAIT)

    bus.subscribe(Demo.PING, waits_on_the_worker)
    bus.subscribe(Demo.PONG, lambda event: pongs.append(event.data["n"]))
    started = time.perf_counter()
    reports = await asyncio.gather(*(bus.publish(_ev(n)) for n in range(waits)))
    elapsed = time.perf_counter() - started
    assert [len(report.succeeded) for report in reports] == [1] * waits
    assert [len(report.failed) for report in reports] == [0] * waits
    assert sorted(pongs) == list(range(waits))
    assert elapsed < WAIT  # each wait would have run into its 5 s bound


@pytest.mark.asyncio
async def test_the_pool_grows_when_every_thread_waits_on_work_that_needs_a_pool_thread(bus: EventBus) -> None:
    pongs: list[int] = []
    waits = MAX_THREADS + 2
    all_busy = threading.Barrier(MAX_THREADS)

    def waits_on_a_publish(event: Event) -> None:
        # On a pool thread, once every pool thread is here: an ``await
        # publish`` whose sync receiver needs a pool thread of its own.
        # Bounded, so a deadlock fails the test instead of hanging it.
        if event.data["n"] < MAX_THREADS:
            all_busy.wait(WAIT)
        pong = Event(Demo.PONG, {"n": event.data["n"]})
        asyncio.run(asyncio.wait_for(bus.publish(pong), 3 * WAIT))

    bus.subscribe(Demo.PING, waits_on_a_publish)
    bus.subscribe(Demo.PONG, lambda event: pongs.append(event.data["n"]))
    reports = await asyncio.gather(*(bus.publish(_ev(n)) for n in range(waits)))
    assert [len(report.failed) for report in reports] == [0] * waits
    assert [len(report.succeeded) for report in reports] == [1] * waits
    assert sorted(pongs) == list(range(waits))


def test_a_worker_receiver_waiting_on_a_thread_that_publishes_into_the_full_queue_does_not_deadlock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus(queue_size=1, overflow="block")  # no timeout: "block" waits until there is room
    publishes: list[Future[DeliveryReport]] = []
    joined: list[bool] = []
    inside = threading.Event()
    pongs: list[int] = []

    def publishes_from_a_plain_thread(event: Event) -> None:
        if event.data["n"] != 0:
            return
        inside.wait(WAIT)  # n=1 is queued: the queue is full

        def publisher() -> None:
            # A plain thread does not carry the job's context: to the queue
            # it is any other publisher, and it blocks for room.
            publishes.append(bus.publish_nowait(Event(Demo.PONG, {"n": 2})))

        thread = threading.Thread(target=publisher)
        thread.start()
        thread.join(2 * WAIT)
        joined.append(not thread.is_alive())

    try:
        bus.subscribe(Demo.PING, publishes_from_a_plain_thread)
        bus.subscribe(Demo.PONG, lambda event: pongs.append(event.data["n"]))
        with caplog.at_level(logging.WARNING, logger="blinker_events"):
            started = time.perf_counter()
            first = bus.publish_nowait(_ev(0))
            second = bus.publish_nowait(_ev(1))
            inside.set()
            reports = [first.result(2 * WAIT), second.result(2 * WAIT)]
            elapsed = time.perf_counter() - started
        assert joined == [True]
        assert elapsed < WAIT
        assert [len(report.succeeded) for report in reports] == [1, 1]
        assert len(publishes) == 1
        assert publishes[0].result(WAIT).event.data == {"n": 2}
        assert pongs == [2]
        assert bus.stats()["rejected"] == 0
        assert bus.stats()["dropped"] == 0
        assert bus.stats()["handoffs"] == 1
        moved = [r for r in caplog.records if "moves to another thread" in r.getMessage()]
        assert len(moved) == 1
        assert moved[0].levelno == logging.WARNING
    finally:
        inside.set()
        assert bus.shutdown(timeout=WAIT) == 0
