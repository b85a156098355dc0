"""Thread safety: concurrent publishing and subscription churn, receivers
that subscribe, publish or wait on publishing threads, and exact failure
counting under contention. Each test is bounded (a few seconds at most) and
checks that every thread it started finished."""

from __future__ import annotations

import asyncio
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from blinker_events import DeliveryReport, Event, EventBus, Subscription

from .conftest import WAIT, Demo, wait_until

JOIN = 10.0  # watchdog for every thread a test starts


class Threads:
    """Starts threads that record any exception instead of dying silently."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def start(self, target: Callable[[], Any]) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except BaseException:
                with self._lock:
                    self.errors.append(traceback.format_exc())

        thread = threading.Thread(target=run, daemon=True)
        self.threads.append(thread)
        thread.start()
        return thread

    def join(self, timeout: float = JOIN) -> None:
        for thread in self.threads:
            thread.join(timeout)
        stuck = [t.name for t in self.threads if t.is_alive()]
        assert stuck == [], f"threads did not finish (deadlock?): {stuck}"
        assert self.errors == []


@pytest.fixture
def threads() -> Iterator[Threads]:
    helper = Threads()
    yield helper
    for thread in helper.threads:
        thread.join(JOIN)


def test_steady_receiver_gets_every_event_while_others_churn(bus: EventBus, threads: Threads) -> None:
    """8 publishers x 500 events, 4 threads subscribing and unsubscribing
    other callbacks meanwhile: the receivers subscribed throughout get all
    4000, and nothing raises."""
    steady: list[Event] = []
    wildcard: list[Event] = []
    steady_sub = bus.subscribe(Demo.PING, steady.append)
    wild_sub = bus.subscribe(None, wildcard.append)
    reports: list[DeliveryReport] = []
    stop = threading.Event()
    churned = [0] * 4
    start = threading.Barrier(12, timeout=JOIN)

    def publisher(p: int) -> None:
        start.wait()
        for i in range(500):
            if i == 250:  # halfway, every churner is churning: the two overlap however threads are scheduled
                wait_until(lambda: all(n > 0 for n in churned), timeout=JOIN)
            reports.append(bus.publish_sync(Event(Demo.PING, {"p": p, "i": i})))

    def churner(c: int) -> None:
        callbacks = [lambda e: None for _ in range(5)]
        start.wait()
        while not stop.is_set():
            subs: list[Subscription] = []
            for k, fn in enumerate(callbacks):
                subs.append(bus.subscribe(None if k == 0 else Demo.PING, fn, source=("churn", c)))
            subs.append(bus.subscribe(Demo.PONG, callbacks[1]))
            for sub in subs[:3]:
                assert sub.unsubscribe() is True
            assert bus.unsubscribe(Demo.PONG, callbacks[1]) == 1
            assert bus.unsubscribe_by_source(("churn", c)) == 2
            churned[c] += 1

    for p in range(8):
        threads.start(lambda p=p: publisher(p))
    churners = [threads.start(lambda c=c: churner(c)) for c in range(4)]
    for thread in threads.threads[:8]:
        thread.join(JOIN)
    stop.set()
    for thread in churners:
        thread.join(JOIN)
    threads.join()

    assert len(steady) == 4000
    assert len(wildcard) == 4000
    assert sorted((e.data["p"], e.data["i"]) for e in steady) == [(p, i) for p in range(8) for i in range(500)]
    assert len(reports) == 4000
    assert all(steady_sub in r.succeeded and wild_sub in r.succeeded for r in reports)
    assert [r for r in reports if not r.ok] == []
    assert all(n > 0 for n in churned)
    assert bus.get_subscriptions() == [steady_sub, wild_sub]


@pytest.mark.asyncio
async def test_steady_receivers_under_churn_with_await_publish_and_nowait(bus: EventBus, threads: Threads) -> None:
    """The same with the other two paths publishing concurrently."""
    sync_seen: list[Event] = []
    async_seen: list[Event] = []

    async def async_receiver(event: Event) -> None:
        async_seen.append(event)

    steady = {bus.subscribe(Demo.PING, sync_seen.append), bus.subscribe(Demo.PING, async_receiver)}
    stop = threading.Event()

    def churner() -> None:
        fn = lambda e: None  # noqa: E731
        while not stop.is_set():
            sub = bus.subscribe(Demo.PING, fn)
            assert sub.unsubscribe() is True

    def nowait_publisher() -> None:
        futures = [bus.publish_nowait(Event(Demo.PING, {"via": "nowait"})) for _ in range(200)]
        assert all(f.result(JOIN).ok for f in futures)

    for _ in range(2):
        threads.start(churner)
    nowait = threads.start(nowait_publisher)
    reports = await asyncio.gather(*(bus.publish(Event(Demo.PING, {"via": "await"})) for _ in range(200)))
    await asyncio.to_thread(nowait.join, JOIN)
    stop.set()
    threads.join()

    assert [(r.ok, steady <= set(r.succeeded)) for r in reports] == [(True, True)] * 200
    assert len(sync_seen) == 400
    assert len(async_seen) == 400
    assert sorted(e.data["via"] for e in sync_seen) == ["await"] * 200 + ["nowait"] * 200


def test_receivers_that_subscribe_unsubscribe_and_publish_do_not_deadlock(bus: EventBus, threads: Threads) -> None:
    """From 4 threads at once, a receiver subscribes a fresh callback,
    publishes to it, and unsubscribes it again; every inner delivery
    reaches exactly its own callback once."""
    hits: dict[tuple[int, int], int] = {}
    lock = threading.Lock()

    def on_ping(event: Event) -> None:
        key = (event.data["t"], event.data["i"])
        token = object()

        def inner(e: Event) -> None:
            with lock:
                hits[key] = hits.get(key, 0) + 1

        sub = bus.subscribe(Demo.PONG, inner, sender=token)
        report = bus.publish_sync(Event(Demo.PONG, source=token))
        assert report.succeeded == [sub]
        assert sub.unsubscribe() is True
        assert bus.publish_sync(Event(Demo.PONG, source=token)).succeeded == []

    bus.subscribe(Demo.PING, on_ping)

    def publisher(t: int) -> None:
        for i in range(100):
            assert bus.publish_sync(Event(Demo.PING, {"t": t, "i": i})).ok

    for t in range(4):
        threads.start(lambda t=t: publisher(t))
    threads.join()
    assert hits == {(t, i): 1 for t in range(4) for i in range(100)}
    assert bus.get_subscriber_count(Demo.PONG) == 0


PATHS = ["inline", "await", "nowait"]


def publish_ping(bus: EventBus, path: str, event: Event) -> DeliveryReport:
    """Publish so that PING's sync receiver runs inline (publish_sync), on a
    pool thread (await publish) or on the worker (publish_nowait)."""
    if path == "inline":
        return bus.publish_sync(event)
    if path == "await":
        return asyncio.run(bus.publish(event))
    return bus.publish_nowait(event).result(JOIN)


@pytest.mark.parametrize("path", PATHS)
def test_receiver_waiting_on_a_thread_that_publishes_does_not_deadlock(bus: EventBus, path: str) -> None:
    """The thread publishes with publish_sync and with asyncio.run(publish)
    while the receiver waits for it."""
    pong_sync: list[Event] = []
    pong_async: list[Event] = []
    inner_reports: list[DeliveryReport] = []
    errors: list[BaseException] = []
    finished: list[bool] = []

    async def on_pong_async(event: Event) -> None:
        await asyncio.sleep(0)
        pong_async.append(event)

    pong_subs = [bus.subscribe(Demo.PONG, pong_sync.append), bus.subscribe(Demo.PONG, on_pong_async)]

    def publish_from_thread() -> None:
        try:
            inner_reports.append(bus.publish_sync(Event(Demo.PONG, {"how": "sync"})))
            inner_reports.append(asyncio.run(bus.publish(Event(Demo.PONG, {"how": "await"}))))
        except BaseException as exc:
            errors.append(exc)

    def waiting_receiver(event: Event) -> None:
        helper = threading.Thread(target=publish_from_thread, daemon=True)
        helper.start()
        helper.join(JOIN)
        finished.append(not helper.is_alive())

    sub = bus.subscribe(Demo.PING, waiting_receiver)
    report = publish_ping(bus, path, Event(Demo.PING))

    assert finished == [True]
    assert errors == []
    assert report.succeeded == [sub]
    assert [r.event.data["how"] for r in inner_reports] == ["sync", "await"]
    assert all(set(r.succeeded) == set(pong_subs) and r.ok for r in inner_reports)
    assert [e.data["how"] for e in pong_sync] == ["sync", "await"]
    assert [e.data["how"] for e in pong_async] == ["sync", "await"]


def test_async_receiver_on_the_bus_loop_waiting_on_a_publishing_thread(bus: EventBus) -> None:
    """An async receiver run on the bus loop (publish_sync from a plain
    thread) awaits a thread that publishes to async receivers, which need
    that same loop: it must not deadlock as long as it awaits (not blocks)."""
    pong_async: list[Event] = []

    async def on_pong(event: Event) -> None:
        pong_async.append(event)

    bus.subscribe(Demo.PONG, on_pong)
    inner: list[DeliveryReport] = []

    async def on_ping(event: Event) -> None:
        inner.append(await asyncio.to_thread(bus.publish_sync, Event(Demo.PONG)))

    sub = bus.subscribe(Demo.PING, on_ping)
    report = bus.publish_sync(Event(Demo.PING), timeout=JOIN)
    assert report.succeeded == [sub]
    assert len(inner) == 1
    assert inner[0].ok
    assert len(pong_async) == 1


@pytest.mark.parametrize("path", PATHS)
def test_no_lock_is_held_while_a_receiver_runs(bus: EventBus, path: str) -> None:
    """A receiver waits for another thread that subscribes, unsubscribes,
    changes settings and reads introspection on the same bus."""
    done: list[str] = []
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            sub = bus.subscribe(Demo.OTHER, lambda e: None)
            catch_all = bus.subscribe(None, lambda e: None)
            assert bus.unsubscribe(None, catch_all.callback) == 1
            bus.set_failure_threshold(5)
            bus.set_history_size(50)
            bus.get_subscriptions()
            bus.get_subscriber_count(Demo.PING)
            bus.get_history()
            bus.stats()
            bus.signal_for(Demo.OTHER)
            assert sub.unsubscribe() is True
            bus.publish_sync(Event(Demo.OTHER))
            done.append("other thread")
        except BaseException as exc:
            errors.append(exc)

    finished: list[bool] = []

    def receiver(event: Event) -> None:
        helper = threading.Thread(target=other_thread, daemon=True)
        helper.start()
        helper.join(JOIN)
        finished.append(not helper.is_alive())

    sub = bus.subscribe(Demo.PING, receiver)
    report = publish_ping(bus, path, Event(Demo.PING))
    assert finished == [True]
    assert errors == []
    assert done == ["other thread"]
    assert report.succeeded == [sub]
    assert bus.failure_threshold == 5
    assert bus.history_size == 50


def test_concurrent_failures_are_counted_exactly(bus: EventBus, threads: Threads) -> None:
    bus.set_failure_threshold(1000)
    calls: list[int] = []

    def fails(event: Event) -> None:
        calls.append(1)
        raise ValueError("counted")

    sub = bus.subscribe(Demo.PING, fails)
    start = threading.Barrier(10, timeout=JOIN)

    def publisher() -> None:
        start.wait()
        for _ in range(20):
            bus.publish_sync(Event(Demo.PING))

    for _ in range(10):
        threads.start(publisher)
    threads.join()
    assert len(calls) == 200
    assert sub.failures == 200
    assert sub.disabled is False


def test_concurrent_failures_tip_auto_disable_exactly_once(bus: EventBus, threads: Threads) -> None:
    """Many threads fail the same subscription past its threshold at once:
    it is disabled once and announced once."""
    bus.set_failure_threshold(50)
    announced: list[Event] = []
    calls: list[int] = []

    def fails(event: Event) -> None:
        calls.append(1)
        raise ValueError("x")

    sub = bus.subscribe(Demo.PING, fails)
    bus.subscribe(Demo.SUBSCRIBER_DISABLED, announced.append)
    start = threading.Barrier(10, timeout=JOIN)
    disabled_in: list[DeliveryReport] = []

    def publisher() -> None:
        start.wait()
        for _ in range(10):
            report = bus.publish_sync(Event(Demo.PING))
            if report.disabled:
                disabled_in.append(report)

    for _ in range(10):
        threads.start(publisher)
    threads.join()
    assert sub.disabled is True
    assert [list(r.disabled) for r in disabled_in] == [[sub]]
    assert [e.data["subscription_id"] for e in announced] == [sub.id]
    # deliveries already past the disabled check when it tipped still count
    assert sub.failures == len(calls)


def test_concurrent_failures_on_pool_threads_are_counted_exactly(bus: EventBus) -> None:
    bus.set_failure_threshold(1000)

    def fails(event: Event) -> None:
        raise ValueError("counted")

    sub = bus.subscribe(Demo.PING, fails)

    async def main() -> list[DeliveryReport]:
        return await asyncio.gather(*(bus.publish(Event(Demo.PING)) for _ in range(100)))

    reports = asyncio.run(main())
    futures = [bus.publish_nowait(Event(Demo.PING)) for _ in range(100)]
    reports += [f.result(JOIN) for f in futures]
    assert all(len(r.failed) == 1 for r in reports)
    assert sub.failures == 200


def test_same_event_object_from_two_threads_is_delivered_and_recorded_twice(bus: EventBus, threads: Threads) -> None:
    both_inside = threading.Barrier(2, timeout=JOIN)
    seen: list[Event] = []

    def receiver(event: Event) -> None:
        both_inside.wait()  # both deliveries are in flight at the same time
        seen.append(event)

    sub = bus.subscribe(Demo.PING, receiver)
    event = Event(Demo.PING)
    reports: list[DeliveryReport] = []
    for _ in range(2):
        threads.start(lambda: reports.append(bus.publish_sync(event)))
    threads.join()

    assert seen == [event, event]
    assert len(reports) == 2
    assert reports[0] is not reports[1]
    assert all(r.succeeded == [sub] for r in reports)
    assert bus.get_history() == [event, event]
    assert {id(r) for r in bus.get_delivery_reports()} == {id(r) for r in reports}


def test_concurrent_history_is_complete_and_bounded(threads: Threads) -> None:
    bus = EventBus(history_size=100)
    try:
        bus.subscribe(Demo.PING, lambda e: None)
        start = threading.Barrier(4, timeout=JOIN)

        def publisher(t: int) -> None:
            start.wait()
            for i in range(250):
                bus.publish_sync(Event(Demo.PING, {"t": t, "i": i}))

        for t in range(4):
            threads.start(lambda t=t: publisher(t))
        threads.join()
        history = bus.get_history()
        assert len(history) == 100
        assert len({e.event_id for e in history}) == 100
    finally:
        assert bus.shutdown(timeout=10) == 0


# failure mode 14: the same event from two threads
def test_same_event_published_from_two_threads_at_once(bus: EventBus) -> None:
    """The same event object published from two threads at once was delivered only
    once but recorded in history twice."""
    both_inside = threading.Barrier(2, timeout=WAIT)
    seen: list[Event] = []
    errors: list[BaseException] = []

    def receiver(event: Event) -> None:
        both_inside.wait()
        seen.append(event)

    sub = bus.subscribe(Demo.PING, receiver)
    event = Event(Demo.PING)
    reports: list[DeliveryReport] = []

    def publish() -> None:
        try:
            reports.append(bus.publish_sync(event))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert [t.is_alive() for t in threads] == [False, False]
    assert errors == []
    assert seen == [event, event]
    assert [r.succeeded for r in reports] == [[sub], [sub]]
    assert bus.get_history() == [event, event]
    assert len(bus.get_delivery_reports()) == 2
