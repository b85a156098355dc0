"""The cycle guard: a subscription is never re-entered by an event its own
handling caused (A->A, A->B->A), on every publish path, and nesting is
bounded by ``max_depth``."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from blinker_events import (
    CircularEventError,
    DeliveryReport,
    Event,
    EventBus,
    Subscription,
    lowlevel,
)

from .conftest import Demo, log_records

WAIT = 5.0


def cycle_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "blinker_events" and r.levelno == logging.WARNING and "cycle guard" in r.getMessage()
    ]


def assert_cycle_skip(report: DeliveryReport, sub: Subscription) -> CircularEventError:
    """``report`` delivered to nobody and skipped exactly ``sub`` for a cycle."""
    assert report.succeeded == []
    assert list(report.failed) == []
    assert list(report.timed_out) == []
    assert len(report.skipped) == 1
    skipped_sub, reason, error = report.skipped[0]
    assert skipped_sub is sub
    assert reason == "cycle"
    assert isinstance(error, CircularEventError)
    assert sub.name in str(error)
    return error


# -- A -> A ----------------------------------------------------------------------


def test_self_publishing_receiver_runs_once_with_publish_sync(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Event] = []
    inner: list[DeliveryReport] = []

    def on_ping(event: Event) -> None:
        calls.append(event)
        inner.append(bus.publish_sync(Event(Demo.PING, {"n": len(calls)})))

    sub = bus.subscribe(Demo.PING, on_ping)
    outer = Event(Demo.PING, {"n": 0})
    report = bus.publish_sync(outer)

    assert calls == [outer]
    assert report.succeeded == [sub]
    assert list(report.skipped) == []
    assert len(inner) == 1
    error = assert_cycle_skip(inner[0], sub)
    assert "re-entered" in str(error)
    assert sub.failures == 0
    assert sub.disabled is False
    assert len(cycle_warnings(caplog)) == 1


@pytest.mark.asyncio
async def test_self_publishing_receiver_runs_once_with_await_publish(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Event] = []
    inner: list[DeliveryReport] = []

    async def on_ping(event: Event) -> None:
        calls.append(event)
        inner.append(await bus.publish(Event(Demo.PING)))

    sub = bus.subscribe(Demo.PING, on_ping)
    outer = Event(Demo.PING)
    report = await bus.publish(outer)

    assert calls == [outer]
    assert report.succeeded == [sub]
    assert len(inner) == 1
    assert_cycle_skip(inner[0], sub)
    assert sub.failures == 0
    assert len(cycle_warnings(caplog)) == 1


@pytest.mark.parametrize("kind", ["sync-on-the-worker", "async-on-the-bus-loop"])
def test_receiver_queueing_its_own_type_runs_once(bus: EventBus, kind: str) -> None:
    """A receiver that queues an event of its own type with publish_nowait --
    a sync one on the worker, or an async one on the bus loop thread: the
    chain travels with the queued event, so the second delivery is skipped."""
    calls: list[Event] = []
    inner: list[Future[DeliveryReport]] = []

    def on_ping(event: Event) -> None:
        calls.append(event)
        inner.append(bus.publish_nowait(Event(Demo.PING)))

    async def on_ping_async(event: Event) -> None:
        on_ping(event)

    sub = bus.subscribe(Demo.PING, on_ping if kind == "sync-on-the-worker" else on_ping_async)
    outer = Event(Demo.PING)
    report = bus.publish_nowait(outer).result(WAIT)
    assert report.succeeded == [sub]
    assert len(inner) == 1
    assert_cycle_skip(inner[0].result(WAIT), sub)
    assert calls == [outer]
    if kind == "sync-on-the-worker":
        assert sub.failures == 0


@pytest.mark.asyncio
async def test_self_publish_from_a_task_created_by_the_receiver_is_skipped(bus: EventBus) -> None:
    """A task the receiver starts carries the chain, even when it publishes
    after the receiver (and the outer publish) returned."""
    calls: list[Event] = []
    tasks: list[asyncio.Task[DeliveryReport]] = []

    async def later() -> DeliveryReport:
        await asyncio.sleep(0.02)
        return await bus.publish(Event(Demo.PING))

    async def on_ping(event: Event) -> None:
        calls.append(event)
        tasks.append(asyncio.create_task(later()))

    sub = bus.subscribe(Demo.PING, on_ping)
    outer = Event(Demo.PING)
    report = await bus.publish(outer)
    assert report.succeeded == [sub]
    assert len(tasks) == 1
    assert tasks[0].done() is False  # it publishes after the outer publish returned
    inner = await asyncio.wait_for(tasks[0], WAIT)
    assert_cycle_skip(inner, sub)
    assert calls == [outer]
    assert sub.failures == 0


@pytest.mark.asyncio
async def test_self_publish_sync_from_a_task_created_by_the_receiver_is_skipped(bus: EventBus) -> None:
    """Same, with the task publishing through publish_sync from a sync receiver."""
    calls: list[Event] = []
    tasks: list[asyncio.Task[DeliveryReport]] = []

    async def later() -> DeliveryReport:
        await asyncio.sleep(0.02)
        return bus.publish_sync(Event(Demo.PING))

    async def on_ping(event: Event) -> None:
        calls.append(event)
        tasks.append(asyncio.create_task(later()))

    sub = bus.subscribe(Demo.PING, on_ping)
    await bus.publish(Event(Demo.PING))
    inner = await asyncio.wait_for(tasks[0], WAIT)
    assert_cycle_skip(inner, sub)
    assert len(calls) == 1


# -- A -> B -> A -----------------------------------------------------------------


def sync_ping_pong(bus: EventBus) -> tuple[list[str], dict[str, DeliveryReport], Subscription, Subscription]:
    """Sync receivers that answer PING with PONG and PONG with PING again,
    with publish_sync: (their calls, the reports of their publishes, the
    PING receiver's subscription, the PONG receiver's)."""
    calls: list[str] = []
    reports: dict[str, DeliveryReport] = {}

    def on_ping(event: Event) -> None:
        calls.append("ping")
        reports["pong"] = bus.publish_sync(Event(Demo.PONG))

    def on_pong(event: Event) -> None:
        calls.append("pong")
        reports["ping-again"] = bus.publish_sync(Event(Demo.PING))

    return calls, reports, bus.subscribe(Demo.PING, on_ping), bus.subscribe(Demo.PONG, on_pong)


def test_two_receivers_ping_ponging_each_run_once_with_publish_sync(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    calls, reports, sub_a, sub_b = sync_ping_pong(bus)
    report = bus.publish_sync(Event(Demo.PING))

    assert calls == ["ping", "pong"]
    assert report.succeeded == [sub_a]
    assert reports["pong"].succeeded == [sub_b]
    error = assert_cycle_skip(reports["ping-again"], sub_a)
    assert sub_b.name in str(error)  # the chain is named in the message
    assert sub_a.failures == 0
    assert sub_b.failures == 0
    assert len(cycle_warnings(caplog)) == 1


@pytest.mark.asyncio
async def test_two_receivers_ping_ponging_each_run_once_with_await_publish(bus: EventBus) -> None:
    calls: list[str] = []
    reports: dict[str, DeliveryReport] = {}

    async def on_ping(event: Event) -> None:
        calls.append("ping")
        reports["pong"] = await bus.publish(Event(Demo.PONG))

    async def on_pong(event: Event) -> None:
        calls.append("pong")
        reports["ping-again"] = await bus.publish(Event(Demo.PING))

    sub_a = bus.subscribe(Demo.PING, on_ping)
    sub_b = bus.subscribe(Demo.PONG, on_pong)
    report = await bus.publish(Event(Demo.PING))

    assert calls == ["ping", "pong"]
    assert report.succeeded == [sub_a]
    assert reports["pong"].succeeded == [sub_b]
    assert_cycle_skip(reports["ping-again"], sub_a)


@pytest.mark.asyncio
async def test_ping_pong_across_sync_receivers_on_pool_threads(bus: EventBus) -> None:
    """Sync receivers run on a pool thread under ``await publish`` and publish
    with publish_sync there: the chain still crosses the thread hop."""
    calls, reports, sub_a, sub_b = sync_ping_pong(bus)
    report = await bus.publish(Event(Demo.PING))
    assert calls == ["ping", "pong"]
    assert report.succeeded == [sub_a]
    assert reports["pong"].succeeded == [sub_b]
    assert_cycle_skip(reports["ping-again"], sub_a)


def test_ping_pong_across_publish_nowait_and_the_bus_loop(bus: EventBus) -> None:
    """A (sync, worker) queues PONG; B (async, bus loop) queues PING: A is skipped."""
    calls: list[str] = []
    futures: dict[str, Future[DeliveryReport]] = {}

    def on_ping(event: Event) -> None:
        calls.append("ping")
        futures["pong"] = bus.publish_nowait(Event(Demo.PONG))

    async def on_pong(event: Event) -> None:
        calls.append("pong")
        futures["ping-again"] = bus.publish_nowait(Event(Demo.PING))

    sub_a = bus.subscribe(Demo.PING, on_ping)
    sub_b = bus.subscribe(Demo.PONG, on_pong)
    assert bus.publish_nowait(Event(Demo.PING)).result(WAIT).succeeded == [sub_a]
    assert futures["pong"].result(WAIT).succeeded == [sub_b]
    assert_cycle_skip(futures["ping-again"].result(WAIT), sub_a)
    assert calls == ["ping", "pong"]


def test_cycle_skip_reports_only_the_cyclic_subscription(bus: EventBus) -> None:
    """Other receivers of the re-published type still get the inner event."""
    calls: list[tuple[str, Any]] = []

    def on_ping(event: Event) -> None:
        calls.append(("a", event.data.get("n")))
        if event.data.get("n") == 0:
            bus.publish_sync(Event(Demo.PING, {"n": 1}))

    def bystander(event: Event) -> None:
        calls.append(("b", event.data.get("n")))

    sub_a = bus.subscribe(Demo.PING, on_ping)
    sub_b = bus.subscribe(Demo.PING, bystander)
    bus.publish_sync(Event(Demo.PING, {"n": 0}))
    assert calls == [("a", 0), ("b", 1), ("b", 0)]
    inner, outer = bus.get_delivery_reports()
    assert inner.succeeded == [sub_b]
    assert [(s, reason) for s, reason, _ in inner.skipped] == [(sub_a, "cycle")]
    assert outer.succeeded == [sub_a, sub_b]


# -- reentrant and max_depth -------------------------------------------------


def test_reentrant_receiver_is_reentered_up_to_max_depth_with_publish_sync(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus(max_depth=5)
    try:
        depths: list[int] = []
        inner: list[DeliveryReport] = []

        def on_ping(event: Event) -> None:
            depths.append(event.data["depth"])
            inner.append(bus.publish_sync(Event(Demo.PING, {"depth": event.data["depth"] + 1})))

        sub = bus.subscribe(Demo.PING, on_ping, reentrant=True)
        report = bus.publish_sync(Event(Demo.PING, {"depth": 0}))

        assert depths == [0, 1, 2, 3, 4]
        assert report.succeeded == [sub]
        # innermost first: the one publish that was stopped, then the four that ran
        assert len(inner) == 5
        error = assert_cycle_skip(inner[0], sub)
        assert "max_depth=5" in str(error)
        assert [r.succeeded for r in inner[1:]] == [[sub]] * 4
        assert sub.failures == 0
        assert len(cycle_warnings(caplog)) == 1
    finally:
        assert bus.shutdown(timeout=10) == 0


@pytest.mark.asyncio
async def test_reentrant_async_receiver_is_reentered_up_to_max_depth() -> None:
    bus = EventBus(max_depth=5)
    try:
        depths: list[int] = []
        inner: list[DeliveryReport] = []

        async def on_ping(event: Event) -> None:
            depths.append(event.data["depth"])
            inner.append(await bus.publish(Event(Demo.PING, {"depth": event.data["depth"] + 1})))

        sub = bus.subscribe(Demo.PING, on_ping, reentrant=True)
        await bus.publish(Event(Demo.PING, {"depth": 0}))
        assert depths == [0, 1, 2, 3, 4]
        assert "max_depth=5" in str(assert_cycle_skip(inner[0], sub))
    finally:
        assert bus.shutdown(timeout=10) == 0


def test_reentrant_receiver_with_default_max_depth_runs_16_times(bus: EventBus) -> None:
    assert bus.max_depth == 16
    calls: list[int] = []

    def on_ping(event: Event) -> None:
        calls.append(1)
        bus.publish_sync(Event(Demo.PING))

    bus.subscribe(Demo.PING, on_ping, reentrant=True)
    bus.publish_sync(Event(Demo.PING))
    assert len(calls) == 16


def chain_of(bus: EventBus, length: int) -> tuple[list[str], list[Subscription], list[DeliveryReport]]:
    """Subscribe receivers to the distinct types t0..t{length-1}; receiver i
    publishes t{i+1} (the last publishes nothing). Returns (ran, subs, reports
    of the nested publishes, innermost first)."""
    ran: list[str] = []
    reports: list[DeliveryReport] = []
    types = [f"chain-t{i}" for i in range(length)]

    def make(i: int) -> Callable[[Event], None]:
        def receiver(event: Event) -> None:
            ran.append(types[i])
            if i + 1 < length:
                reports.append(bus.publish_sync(Event(types[i + 1])))

        return receiver

    subs = [bus.subscribe(t, make(i)) for i, t in enumerate(types)]
    return ran, subs, reports


def test_non_cyclic_nesting_works_up_to_max_depth() -> None:
    bus = EventBus(max_depth=5)
    try:
        ran, subs, reports = chain_of(bus, 5)
        report = bus.publish_sync(Event("chain-t0"))
        assert ran == ["chain-t0", "chain-t1", "chain-t2", "chain-t3", "chain-t4"]
        assert report.ok
        assert report.succeeded == [subs[0]]
        assert [r.succeeded for r in reports] == [[subs[4]], [subs[3]], [subs[2]], [subs[1]]]
        assert all(r.ok for r in reports)
    finally:
        assert bus.shutdown(timeout=10) == 0


def test_non_cyclic_nesting_is_stopped_beyond_max_depth(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus(max_depth=5)
    try:
        ran, subs, reports = chain_of(bus, 8)
        report = bus.publish_sync(Event("chain-t0"))
        assert ran == ["chain-t0", "chain-t1", "chain-t2", "chain-t3", "chain-t4"]
        assert report.succeeded == [subs[0]]
        assert len(reports) == 5
        error = assert_cycle_skip(reports[0], subs[5])
        assert "max_depth=5" in str(error)
        assert all(s.failures == 0 for s in subs)
        assert len(cycle_warnings(caplog)) == 1
    finally:
        assert bus.shutdown(timeout=10) == 0


def test_non_cyclic_nesting_with_default_max_depth(bus: EventBus) -> None:
    ran, subs, reports = chain_of(bus, 20)
    bus.publish_sync(Event("chain-t0"))
    assert ran == [f"chain-t{i}" for i in range(16)]
    assert_cycle_skip(reports[0], subs[16])


def test_set_max_depth_applies_to_the_next_publish(bus: EventBus) -> None:
    bus.set_max_depth(3)
    ran, subs, reports = chain_of(bus, 6)
    bus.publish_sync(Event("chain-t0"))
    assert ran == ["chain-t0", "chain-t1", "chain-t2"]
    assert_cycle_skip(reports[0], subs[3])


# -- cycles and auto-disable -------------------------------------------------


def test_cycle_skips_do_not_count_toward_auto_disable() -> None:
    bus = EventBus(failure_threshold=1)
    try:
        calls: list[int] = []
        inner: list[DeliveryReport] = []

        def on_ping(event: Event) -> None:
            calls.append(1)
            inner.append(bus.publish_sync(Event(Demo.PING)))

        sub = bus.subscribe(Demo.PING, on_ping)
        for _ in range(3):
            assert bus.publish_sync(Event(Demo.PING)).succeeded == [sub]
        assert len(calls) == 3
        assert [reason for r in inner for _, reason, _ in r.skipped] == ["cycle"] * 3
        assert sub.failures == 0
        assert sub.disabled is False
        assert all(list(r.disabled) == [] for r in bus.get_delivery_reports())
    finally:
        assert bus.shutdown(timeout=10) == 0


# -- cycles under exception propagation ------------------------------------


def test_propagation_raises_circular_error_from_the_inner_publish_sync() -> None:
    bus = EventBus(propagate_exceptions=True)
    try:
        calls: list[int] = []
        raised: list[BaseException] = []

        def on_ping(event: Event) -> None:
            calls.append(1)
            try:
                bus.publish_sync(Event(Demo.PING))
            except BaseException as exc:
                raised.append(exc)
                raise

        sub = bus.subscribe(Demo.PING, on_ping)
        with pytest.raises(CircularEventError) as excinfo:
            bus.publish_sync(Event(Demo.PING))

        assert calls == [1]
        assert len(raised) == 1
        assert excinfo.value is raised[0]
        inner, outer = bus.get_delivery_reports()
        assert assert_cycle_skip(inner, sub) is raised[0]
        # The outer receiver let the error out, so it failed with it (a real failure).
        assert outer.succeeded == []
        assert list(outer.failed) == [(sub, raised[0])]
        assert sub.failures == 1
    finally:
        assert bus.shutdown(timeout=10) == 0


@pytest.mark.asyncio
async def test_propagation_raises_circular_error_from_the_inner_await_publish() -> None:
    bus = EventBus(propagate_exceptions=True)
    try:
        raised: list[BaseException] = []

        async def on_ping(event: Event) -> None:
            try:
                await bus.publish(Event(Demo.PING))
            except BaseException as exc:
                raised.append(exc)
                raise

        sub = bus.subscribe(Demo.PING, on_ping)
        with pytest.raises(CircularEventError) as excinfo:
            await bus.publish(Event(Demo.PING))
        assert len(raised) == 1
        assert excinfo.value is raised[0]
        inner, outer = bus.get_delivery_reports()
        assert assert_cycle_skip(inner, sub) is raised[0]
        assert list(outer.failed) == [(sub, raised[0])]
    finally:
        assert bus.shutdown(timeout=10) == 0


def test_propagation_nowait_inner_future_resolves_to_circular_error() -> None:
    bus = EventBus(propagate_exceptions=True)
    try:
        inner: list[Future[DeliveryReport]] = []

        def on_ping(event: Event) -> None:
            inner.append(bus.publish_nowait(Event(Demo.PING)))

        sub = bus.subscribe(Demo.PING, on_ping)
        assert bus.publish_nowait(Event(Demo.PING)).result(WAIT).succeeded == [sub]
        error = inner[0].exception(WAIT)
        assert isinstance(error, CircularEventError)
        assert sub.name in str(error)
    finally:
        assert bus.shutdown(timeout=10) == 0


# -- parent_id ---------------------------------------------------------------


def test_parent_id_links_nested_events_with_publish_sync(bus: EventBus) -> None:
    seen: list[Event] = []

    def relay(next_type: str | None) -> Callable[[Event], None]:
        def receiver(event: Event) -> None:
            seen.append(event)
            if next_type is not None:
                bus.publish_sync(Event(next_type))

        return receiver

    bus.subscribe("p0", relay("p1"))
    bus.subscribe("p1", relay("p2"))
    bus.subscribe("p2", relay(None))
    root = Event("p0")
    bus.publish_sync(root)
    assert [e.event_type for e in seen] == ["p0", "p1", "p2"]
    assert seen[0] is root
    assert root.parent_id is None
    assert seen[1].parent_id == root.event_id
    assert seen[2].parent_id == seen[1].event_id
    # The history records them in order of completion: the innermost first.
    assert bus.get_history() == [seen[2], seen[1], seen[0]]


@pytest.mark.asyncio
async def test_parent_id_links_nested_events_with_await_publish(bus: EventBus) -> None:
    seen: list[Event] = []

    async def on_ping(event: Event) -> None:
        seen.append(event)
        await bus.publish(Event(Demo.PONG))

    def on_pong(event: Event) -> None:
        seen.append(event)

    bus.subscribe(Demo.PING, on_ping)
    bus.subscribe(Demo.PONG, on_pong)
    await bus.publish(Event(Demo.PING))
    assert [e.event_type for e in seen] == [Demo.PING, Demo.PONG]
    assert seen[0].parent_id is None
    assert seen[1].parent_id == seen[0].event_id


def test_parent_id_links_events_queued_from_the_worker(bus: EventBus) -> None:
    seen: list[Event] = []
    inner: list[Future[DeliveryReport]] = []

    def on_ping(event: Event) -> None:
        seen.append(event)
        inner.append(bus.publish_nowait(Event(Demo.PONG)))

    bus.subscribe(Demo.PING, on_ping)
    bus.subscribe(Demo.PONG, seen.append)
    root = Event(Demo.PING)
    bus.publish_nowait(root).result(WAIT)
    inner[0].result(WAIT)
    assert seen[0] is root
    assert seen[1].parent_id == root.event_id


def test_parent_id_of_the_skipped_self_published_event(bus: EventBus) -> None:
    made: list[Event] = []

    def on_ping(event: Event) -> None:
        made.append(Event(Demo.PING))
        bus.publish_sync(made[-1])

    bus.subscribe(Demo.PING, on_ping)
    root = Event(Demo.PING)
    bus.publish_sync(root)
    assert len(made) == 1
    assert made[0].parent_id == root.event_id
    assert bus.get_history() == [made[0], root]


def test_each_of_several_receivers_sees_its_own_frame_and_the_caller_its_own_after(bus: EventBus) -> None:
    # The frame a receiver runs in is replaced for the next receiver and
    # restored once, when the delivery ends: each receiver must still see
    # only its own, and the publisher none of theirs afterwards.
    made: dict[int, Event] = {}

    def maker(event: Event) -> None:
        made[len(made)] = Event(Demo.PONG)

    subs = [bus.subscribe(Demo.PING, functools.partial(maker)) for _ in range(3)]
    root = Event(Demo.PING)
    bus.publish_sync(root)
    assert [lowlevel.published_by(made[i]) for i in range(3)] == [sub.id for sub in subs]
    assert {made[i].parent_id for i in range(3)} == {root.event_id}
    after = Event(Demo.PONG)
    assert after.parent_id is None
    assert lowlevel.published_by(after) is None


def test_a_receiver_interrupting_the_delivery_leaves_the_caller_its_own_frame(bus: EventBus) -> None:
    def interrupts(event: Event) -> None:
        raise KeyboardInterrupt

    bus.subscribe(Demo.PING, lambda event: None)
    bus.subscribe(Demo.PING, interrupts)
    with pytest.raises(KeyboardInterrupt):
        bus.publish_sync(Event(Demo.PING))
    assert Event(Demo.PONG).parent_id is None


@pytest.mark.parametrize("outcome", ["failed", "timed out"])
def test_log_handlers_run_outside_the_frame_of_the_receiver_they_report(bus: EventBus, outcome: str) -> None:
    # A log handler is the application's code: an event it makes while the
    # bus logs a receiver's failure or overrun is not that receiver's.
    parents: list[str | None] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            parents.append(Event(Demo.OTHER).parent_id)

    def bad(event: Event) -> None:
        if outcome == "failed":
            raise RuntimeError("boom")
        threading.Event().wait(0.3)

    bus.subscribe(Demo.PING, lambda event: None)
    bus.subscribe(Demo.PING, bad, timeout=0.05)
    logger = logging.getLogger("blinker_events")
    handler = Recorder()
    logger.addHandler(handler)
    try:
        report = bus.publish_sync(Event(Demo.PING))
    finally:
        logger.removeHandler(handler)
    assert len(report.failed if outcome == "failed" else report.timed_out) == 1
    assert len(parents) >= 1  # (a timeout is also logged by the watchdog's thread)
    assert set(parents) == {None}


# -- plain threads: followed only when they carry the context -----------------------
#
# A context variable does not cross into a thread started by hand, so the
# guard follows a plain thread or an executor's submit only when the code
# hands the context over itself, with contextvars.copy_context().run: the
# docs (cycle-guard.md) document that as the way, and state the limit.


def republish_in(start: Callable[[Callable[[], None]], None], bus: EventBus) -> tuple[Subscription, list[Event]]:
    """Subscribe a PING receiver that republishes PING through ``start`` (a
    way of running a function on another thread, waited for), at most three
    times in all so that an unguarded loop ends."""
    calls: list[Event] = []

    def on_ping(event: Event) -> None:
        calls.append(event)
        if len(calls) < 3:
            start(lambda: bus.publish_sync(Event(Demo.PING)))

    return bus.subscribe(Demo.PING, on_ping), calls


def in_thread(fn: Callable[[], None]) -> None:
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join(WAIT)


def in_thread_with_context(fn: Callable[[], None]) -> None:
    in_thread(functools.partial(contextvars.copy_context().run, fn))


def in_executor_with_context(fn: Callable[[], None]) -> None:
    with ThreadPoolExecutor(1) as pool:
        pool.submit(contextvars.copy_context().run, fn).result(WAIT)


@pytest.mark.parametrize("start", [in_thread_with_context, in_executor_with_context])
def test_republish_from_a_thread_given_the_context_is_stopped_by_the_cycle_guard(
    bus: EventBus, start: Callable[[Callable[[], None]], None]
) -> None:
    sub, calls = republish_in(start, bus)
    root = Event(Demo.PING)
    bus.publish_sync(root)
    assert calls == [root]
    inner = bus.get_delivery_reports()[0]
    assert inner.event.parent_id == root.event_id
    assert_cycle_skip(inner, sub)


def test_republish_from_a_plain_thread_is_not_followed(bus: EventBus) -> None:
    """The documented limit: a thread started without the context starts a
    new causal chain, so the receiver is entered again (here until the
    test's own counter stops it) and the new events have no parent."""
    _, calls = republish_in(in_thread, bus)
    bus.publish_sync(Event(Demo.PING))
    assert len(calls) == 3
    assert [event.parent_id for event in calls[1:]] == [None, None]


# failure mode 13: the cycle guard and new events
def test_a_new_event_of_the_receivers_own_type_is_a_cycle(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    """The "circular dependency" guard only caught the *same event object* coming
    back. A handler that published a *new* event of its own type recursed 300
    levels deep (would end in `RecursionError`)."""
    calls: list[int] = []
    inner: list[DeliveryReport] = []

    def handler(event: Event) -> None:
        calls.append(1)
        inner.append(bus.publish_sync(Event(Demo.PING, {"new": True})))

    sub = bus.subscribe(Demo.PING, handler)
    report = bus.publish_sync(Event(Demo.PING))
    assert calls == [1]
    assert report.succeeded == [sub]
    assert len(inner) == 1
    ((skipped, reason, error),) = inner[0].skipped
    assert (skipped, reason) == (sub, "cycle")
    assert isinstance(error, CircularEventError)
    assert len(log_records(caplog, logging.WARNING, "cycle guard")) == 1
    assert sub.failures == 0
