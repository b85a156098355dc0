"""A cancelled publish is not its receivers' failure.

When the publisher is cancelled (``asyncio.wait_for`` around ``await
publish``, a client disconnecting from an async view, a loop ending under
receivers that ``publish_sync`` scheduled), the async receivers the publish
owns are cancelled with it and reported as ``cancelled``: no failure is
counted, no receiver is disabled, the publish still leaves its history entry.
Sync receivers on a pool thread cannot be stopped; they finish and their
outcome lands in that same history entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from blinker_events import DeliveryReport, Event, EventBus, SystemEventType, lowlevel

from .conftest import BusFactory, Demo, all_collected, async_wait_until, log_records


def _hanging_receiver(cancelled: list[str], name: str) -> Callable[[Event], object]:
    async def receiver(event: Event) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    receiver.__qualname__ = name
    return receiver


def test_cancelled_publish_to_one_receiver_is_not_a_failure(bus: EventBus) -> None:
    seen: list[str] = []
    sub = bus.subscribe(Demo.PING, _hanging_receiver(seen, "alone"))

    async def main() -> None:
        for _ in range(bus.failure_threshold + 1):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(bus.publish(Event(Demo.PING)), 0.05)

    asyncio.run(main())
    assert seen == ["alone"] * (bus.failure_threshold + 1)
    assert sub.failures == 0
    assert not sub.disabled
    reports = bus.get_delivery_reports(Demo.PING)
    assert len(reports) == bus.failure_threshold + 1
    for report in reports:
        assert list(report.cancelled) == [sub]
        assert list(report.failed) == []
        assert report.succeeded == []
        assert report.disabled == ()
        assert not report.ok  # not an error, but the receiver did not finish
        assert report.errors() == []


def test_cancelled_publish_cancels_each_of_several_receivers_without_counting(bus: EventBus) -> None:
    seen: list[str] = []
    first = bus.subscribe(Demo.PING, _hanging_receiver(seen, "first"))
    second = bus.subscribe(Demo.PING, _hanging_receiver(seen, "second"))
    quick = bus.subscribe(Demo.PING, lambda event: None)

    async def main() -> None:
        for _ in range(bus.failure_threshold + 1):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(bus.publish(Event(Demo.PING)), 0.05)
        assert await async_wait_until(
            lambda: (
                len(seen) == 2 * (bus.failure_threshold + 1)
                and all(r.succeeded for r in bus.get_delivery_reports(Demo.PING))
            ),
            5.0,
        )

    asyncio.run(main())
    assert sorted(seen) == sorted(["first", "second"] * (bus.failure_threshold + 1))
    assert (first.failures, second.failures) == (0, 0)
    assert (first.disabled, second.disabled) == (False, False)
    assert len(bus.get_delivery_reports(Demo.PING)) == bus.failure_threshold + 1
    for report in bus.get_delivery_reports(Demo.PING):
        assert sorted(s.name for s in report.cancelled) == sorted([first.name, second.name])
        assert list(report.failed) == []
        assert report.succeeded == [quick]  # the sync receiver finished on its pool thread


@pytest.mark.parametrize("executor", ["worker", "thread_sensitive"])
@pytest.mark.parametrize("async_receivers", [0, 1, 2])
def test_sync_receivers_of_a_cancelled_publish_finish_into_its_history_entry(
    bus: EventBus, executor: str, async_receivers: int
) -> None:
    bus.set_sync_executor(executor)
    gate = threading.Event()
    sub = bus.subscribe(Demo.PING, lambda event: gate.wait(10))
    hanging = [bus.subscribe(Demo.PING, _hanging_receiver([], f"hangs{n}")) for n in range(async_receivers)]

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bus.publish(Event(Demo.PING)), 0.05)
        [report] = bus.get_delivery_reports(Demo.PING)
        assert report.succeeded == []  # still running on its pool thread
        gate.set()
        assert await async_wait_until(lambda: report.succeeded == [sub], 5.0)
        assert list(report.cancelled) == hanging
        assert list(report.failed) == []

    asyncio.run(main())


@pytest.mark.parametrize("started", [True, False], ids=["started", "not-started"])
def test_receivers_scheduled_by_publish_sync_are_cancelled_when_their_loop_ends(bus: EventBus, started: bool) -> None:
    seen: list[str] = []
    subs = [bus.subscribe(Demo.PING, _hanging_receiver(seen, name)) for name in ("one", "two")]
    reports = []

    def publish_all() -> None:
        for _ in range(bus.failure_threshold + 1):
            report = bus.publish_sync(Event(Demo.PING))
            assert list(report.scheduled) == subs
            reports.append(report)

    async def main() -> None:
        if started:
            publish_all()
            await asyncio.sleep(0.05)  # let the tasks start; asyncio.run then cancels them
        else:
            # Runs after main ended, just before the loop stops: the tasks
            # are cancelled before their first step.
            asyncio.get_running_loop().call_soon(publish_all)

    for count in (2, 1):
        seen.clear()
        reports.clear()
        if count == 1:
            subs[1].unsubscribe()
            subs = subs[:1]
        asyncio.run(main())
        assert len(reports) == bus.failure_threshold + 1  # publish_all ran to its end
        assert len(seen) == (len(subs) * (bus.failure_threshold + 1) if started else 0)
        for report in reports:
            assert report.finished
            assert list(report.cancelled) == subs
            assert list(report.failed) == []
        assert all(s.failures == 0 and not s.disabled for s in subs)


@pytest.mark.parametrize("receivers", [1, 2])
@pytest.mark.parametrize("started", [True, False], ids=["started", "not-started"])
def test_receivers_scheduled_by_publish_sync_are_cancelled_when_their_loop_is_closed_by_hand(
    bus: EventBus, started: bool, receivers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bare loop.close(), unlike asyncio.run, cancels nothing: the tasks are
    # just dropped. The bus must neither keep them (nor their reports) for
    # good nor raise from their teardown, and their reports still finish.
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    subs = [bus.subscribe(Demo.PING, _hanging_receiver([], f"hangs{n}")) for n in range(receivers)]
    reports = []
    tasks: list[weakref.ref[asyncio.Task[object]]] = []

    def publish() -> None:
        before = asyncio.all_tasks()
        reports.append(bus.publish_sync(Event(Demo.PING)))
        tasks.extend(weakref.ref(task) for task in asyncio.all_tasks() - before)

    async def handler() -> None:
        if started:
            publish()
            await asyncio.sleep(0.05)  # the receivers are running now
        else:
            asyncio.get_running_loop().call_soon(publish)  # as the loop stops

    loop = asyncio.new_event_loop()
    loop.run_until_complete(handler())
    loop.close()
    del loop
    [report] = reports
    assert len(tasks) == 1
    assert all_collected(tasks)
    assert report.finished
    assert list(report.cancelled) == subs
    assert list(report.failed) == []
    assert unraisable == []


def test_a_receiver_cancelled_by_someone_else_is_reported_cancelled(bus: EventBus) -> None:
    tasks: list[asyncio.Task[object]] = []

    async def cancelled_elsewhere(event: Event) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        await asyncio.sleep(60)

    sub = bus.subscribe(Demo.PING, cancelled_elsewhere)
    other = bus.subscribe(Demo.PING, _hanging_receiver([], "other"), timeout=0.2)

    async def main() -> None:
        publish = asyncio.ensure_future(bus.publish(Event(Demo.PING)))
        assert await async_wait_until(lambda: len(tasks) == 1, 5.0)
        tasks[0].cancel()
        report = await publish
        assert list(report.cancelled) == [sub]
        assert list(report.timed_out) == [other]
        assert list(report.failed) == []
        assert sub.failures == 0

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 5


def test_cancelled_outcome_shows_in_the_report_repr(bus: EventBus) -> None:
    bus.subscribe(Demo.PING, _hanging_receiver([], "alone"))

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bus.publish(Event(Demo.PING)), 0.05)

    asyncio.run(main())
    [report] = bus.get_delivery_reports(Demo.PING)
    assert "0 failed" in repr(report)
    assert "1 cancelled" in repr(report)


def test_a_receiver_that_failed_before_the_cancellation_keeps_its_failure(bus: EventBus) -> None:
    bus.set_failure_threshold(1)
    announced: list[Event] = []
    bus.subscribe(SystemEventType.SUBSCRIBER_DISABLED, announced.append)

    async def fails(event: Event) -> None:
        raise ValueError("broken")

    failing = bus.subscribe(Demo.PING, fails)
    hanging = bus.subscribe(Demo.PING, _hanging_receiver([], "hangs"))

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bus.publish(Event(Demo.PING)), 0.1)
        assert await async_wait_until(lambda: len(announced) == 1, 5.0)

    asyncio.run(main())
    [report] = bus.get_delivery_reports(Demo.PING)
    assert [(s, type(e)) for s, e in report.failed] == [(failing, ValueError)]
    assert list(report.cancelled) == [hanging]
    assert list(report.disabled) == [failing]
    assert announced[0].data["subscription_id"] == failing.id
    assert (hanging.failures, hanging.disabled) == (0, False)


def test_a_redis_delivery_with_a_cancelled_receiver_is_not_acknowledged_as_done(bus: EventBus) -> None:
    pytest.importorskip("redis")
    from blinker_events.redis._delivery import _problem

    bus.subscribe(Demo.PING, _hanging_receiver([], "hangs"))

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bus.publish(Event(Demo.PING)), 0.05)

    asyncio.run(main())
    [report] = bus.get_delivery_reports(Demo.PING)
    assert _problem(report, strict=False) == "tests.test_cancellation.hangs cancelled"


def test_queued_async_receivers_cut_short_by_a_shutdown_resolve_to_a_cancelled_report(bus: EventBus) -> None:
    """A shutdown whose time ran out stops the bus loop under a queued
    event's async receiver: the publisher's future still resolves to the
    report, which says the receiver was cancelled, and the history has it."""
    cancelled: list[str] = []
    sub = bus.subscribe(Demo.PING, _hanging_receiver(cancelled, "hangs"))
    future = bus.publish_nowait(Event(Demo.PING))
    deadline = time.monotonic() + 5
    while bus.stats()["queued"] and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the receiver is now awaiting on the bus loop
    bus.shutdown(timeout=0.5)
    report = future.result(5)
    assert list(report.cancelled) == [sub]
    assert list(report.failed) == []
    assert sub.failures == 0
    assert bus.get_delivery_reports() == [report]
    assert cancelled == ["hangs"]


def test_a_queued_event_whose_future_is_cancelled_is_withdrawn_and_recorded(bus: EventBus) -> None:
    """``future.cancel()`` while the event is still queued withdraws it, as
    with an executor: no receiver runs. Like any cancelled publish it leaves
    a history entry, its receivers under ``cancelled`` and not failed."""
    gate = threading.Event()
    ran: list[str] = []
    first = bus.subscribe(Demo.PING, lambda event: gate.wait(10))
    second = bus.subscribe(Demo.PONG, lambda event: ran.append("pong"))
    holding = bus.publish_nowait(Event(Demo.PING))  # holds the worker
    withdrawn_event = Event(Demo.PONG)
    withdrawn = bus.publish_nowait(withdrawn_event)
    assert withdrawn.cancel()
    gate.set()
    assert holding.result(5).succeeded == [first]
    assert bus.shutdown(timeout=5) == 0
    assert ran == []
    (entry,) = bus.get_delivery_reports(Demo.PONG)
    assert entry.event is withdrawn_event
    assert list(entry.cancelled) == [second]
    assert list(entry.failed) == []
    assert second.failures == 0


def test_recording_a_withdrawn_event_that_raises_leaves_the_worker_draining(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    # An observer that raises what the history does not catch (SystemExit)
    # while the withdrawn event is recorded: that is logged, and the events
    # queued behind it are still delivered.
    gate = threading.Event()
    ran: list[str] = []

    def observer(report: DeliveryReport) -> None:
        if report.event.event_type is Demo.PONG:
            raise SystemExit("observer")

    bus.subscribe(Demo.PING, lambda event: gate.wait(10))
    bus.subscribe(Demo.OTHER, lambda event: ran.append("other"))
    lowlevel.observe(bus, observer)
    bus.publish_nowait(Event(Demo.PING))  # holds the worker
    withdrawn = bus.publish_nowait(Event(Demo.PONG))
    behind = bus.publish_nowait(Event(Demo.OTHER))
    assert withdrawn.cancel()
    gate.set()
    assert len(behind.result(5).succeeded) == 1
    assert ran == ["other"]
    assert len(log_records(caplog, logging.ERROR, "withdrawn")) == 1
    assert bus.shutdown(timeout=5) == 0


def test_scheduled_receiver_cancelled_when_its_loop_ends_is_reported_cancelled(bus: EventBus) -> None:
    """Used to: a receiver scheduled by ``publish_sync`` on a running loop and
    cancelled when that loop ended vanished from the report, which still said
    finished and ok."""

    async def slow(e: Event) -> None:
        await asyncio.sleep(5)

    sub = bus.subscribe(Demo.PING, slow)
    box: dict[str, DeliveryReport] = {}

    async def main() -> None:
        box["report"] = bus.publish_sync(Event(Demo.PING))
        assert box["report"].scheduled == [sub]

    asyncio.run(main())  # ends the loop, cancelling the scheduled task
    report = box["report"]

    assert report.finished
    assert not report.ok
    assert list(report.cancelled) == [sub]
    assert sub.failures == 0
    assert (report.succeeded, list(report.failed), list(report.timed_out), list(report.skipped)) == ([], [], [], [])


@pytest.mark.asyncio
@pytest.mark.parametrize("receivers", [2, 1], ids=["tasks", "single-receiver"])
async def test_cancelled_publish_hands_receiver_tasks_to_the_bus(
    bus: EventBus, caplog: pytest.LogCaptureFixture, receivers: int
) -> None:
    """Used to: cancelling ``await publish`` cancelled its receivers' tasks but
    dropped them, so an error raised while a receiver unwound went to asyncio's
    "Task exception was never retrieved" instead of the bus's logger."""
    caplog.set_level(logging.ERROR, logger="blinker_events")
    loop = asyncio.get_running_loop()
    contexts: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: contexts.append(context))
    unwound = asyncio.Event()

    async def receiver(e: Event) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await asyncio.sleep(0)
            unwound.set()
            raise RuntimeError("cleanup failed") from None

    async def slow(e: Event) -> None:
        await asyncio.sleep(5)

    bus.subscribe(Demo.PING, receiver)
    if receivers == 2:
        bus.subscribe(Demo.PING, slow)
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(bus.publish(Event(Demo.PING)), 0.1)
        await asyncio.wait_for(unwound.wait(), 1)
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)

    assert [c["message"] for c in contexts] == []
    errors = [r.exc_info[1] for r in caplog.records if r.name == "blinker_events" and r.exc_info]
    assert [str(e) for e in errors if isinstance(e, RuntimeError)] == ["cleanup failed"]


def _ignores_cancellation_until(release: threading.Event) -> Callable[[Event], object]:
    async def stubborn(event: Event) -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # ignored, again and again
                await asyncio.sleep(0.02)

    return stubborn


def test_a_queued_events_only_async_receiver_ignoring_cancellation_does_not_keep_its_future_past_a_shutdown(
    new_bus: BusFactory, release: threading.Event
) -> None:
    # On the bus loop a single receiver still has a task of its own: the
    # shutdown cuts the delivery short even if the receiver never lets go.
    bus = new_bus()
    sub = bus.subscribe(Demo.PING, _ignores_cancellation_until(release))
    future = bus.publish_nowait(Event(Demo.PING))
    time.sleep(0.2)  # it runs now
    bus.shutdown(timeout=0.5)
    report = future.result(timeout=5)
    assert (list(report.cancelled), list(report.failed), report.succeeded) == ([sub], [], [])


def test_publish_sync_to_an_only_async_receiver_ignoring_cancellation_returns_at_its_timeout(
    new_bus: BusFactory, release: threading.Event
) -> None:
    bus = new_bus()
    sub = bus.subscribe(Demo.PING, _ignores_cancellation_until(release), timeout=0.2)
    started = time.monotonic()
    report = bus.publish_sync(Event(Demo.PING))  # no loop here: on the bus loop
    assert time.monotonic() - started < 5
    assert (list(report.timed_out), list(report.cancelled), report.succeeded) == ([sub], [], [])
