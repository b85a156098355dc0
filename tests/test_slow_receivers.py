"""The slow-receiver warning (``slow_after``): a receiver still running that
long after it started is logged once with its stack, counted in
``stats()["slow_receivers"]`` and listed in ``report.slow`` -- on every
path, before its timeout or without one; nothing at all when it is off.

The slow receivers here do not sleep for a guessed time: each waits until
the warning is in (or, bounded, 5 s), so the tests hold on a loaded machine.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import pytest
from asgiref.sync import markcoroutinefunction

from blinker_events import Event, EventBus, lowlevel

from .conftest import BusFactory, Demo, async_wait_until, log_records, wait_until

SLOW = "is slow: still running"


def _warned(bus: EventBus, n: int = 1) -> Callable[[], bool]:
    return lambda: bus.stats()["slow_receivers"] >= n


def test_an_inline_receiver_still_running_after_slow_after_is_warned_once_with_its_stack(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(slow_after=0.1)

    def crunch_numbers(event: Event) -> None:
        assert wait_until(_warned(bus), 5.0)
        time.sleep(0.1)  # a few more watchdog rounds: still one warning

    sub = bus.subscribe(Demo.PING, crunch_numbers)
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = bus.publish_sync(Event(Demo.PING, {"n": 1}))
    (record,) = log_records(caplog, logging.WARNING, SLOW)
    message = record.getMessage()
    assert message.startswith(f"receiver {sub.name} is slow: still running ")
    assert f"handling {report.event!r} (slow_after=0.1s, sync, inline). It is running here:\n" in message
    assert ", in crunch_numbers\n" in message  # the receiver's own frame, from its thread
    elapsed = float(message.split("still running ")[1].split("s after")[0])
    assert elapsed >= 0.1
    assert list(report.slow) == [sub]
    assert list(report.succeeded) == [sub]  # slow is not an outcome: it succeeded
    assert bus.stats()["slow_receivers"] == 1


def test_a_receiver_that_finishes_before_slow_after_gets_no_warning(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(slow_after=0.5)
    bus.subscribe(Demo.PING, lambda event: None)
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = bus.publish_sync(Event(Demo.PING))
        time.sleep(0.7)  # past slow_after: the watchdog had every chance to (wrongly) warn
    assert log_records(caplog, logging.WARNING, SLOW) == []
    assert list(report.slow) == []
    assert bus.stats()["slow_receivers"] == 0


def test_slow_after_is_off_by_default(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    assert bus.slow_after is None
    assert bus.settings.slow_after is None
    bus.subscribe(Demo.PING, lambda event: time.sleep(0.3))
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = bus.publish_sync(Event(Demo.PING))
    assert log_records(caplog, logging.WARNING, SLOW) == []
    assert (list(report.slow), bus.stats()["slow_receivers"]) == ([], 0)


def test_a_slow_receiver_on_the_worker_thread_is_warned(new_bus: BusFactory, caplog: pytest.LogCaptureFixture) -> None:
    bus = new_bus(slow_after=0.1)

    def on_the_worker(event: Event) -> None:
        assert wait_until(_warned(bus), 5.0)

    sub = bus.subscribe(Demo.PING, on_the_worker)
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = bus.publish_nowait(Event(Demo.PING)).result(10)
    (record,) = log_records(caplog, logging.WARNING, SLOW)
    assert "(slow_after=0.1s, sync, on a pool thread)" in record.getMessage()
    assert ", in on_the_worker\n" in record.getMessage()
    assert (list(report.slow), list(report.succeeded)) == ([sub], [sub])


@pytest.mark.asyncio
async def test_a_slow_sync_receiver_of_await_publish_is_warned_from_its_pool_thread(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(slow_after=0.1)

    def on_a_pool_thread(event: Event) -> None:
        assert wait_until(_warned(bus), 5.0)

    sub = bus.subscribe(Demo.PING, on_a_pool_thread)
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = await bus.publish(Event(Demo.PING))
    (record,) = log_records(caplog, logging.WARNING, SLOW)
    assert ", in on_a_pool_thread\n" in record.getMessage()
    assert list(report.slow) == [sub]  # recorded in the sync half's report, merged into the publish's


@pytest.mark.asyncio
async def test_a_slow_async_receiver_in_the_publishers_task_is_warned_with_its_coroutine_stack(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(slow_after=0.1)

    async def call_the_gateway() -> None:
        await async_wait_until(_warned(bus), 5.0)

    async def notify(event: Event) -> None:
        await call_the_gateway()

    sub = bus.subscribe(Demo.PING, notify)
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = await bus.publish(Event(Demo.PING))
    (record,) = log_records(caplog, logging.WARNING, SLOW)
    message = record.getMessage()
    assert f"receiver {sub.name} is slow" in message
    assert "(slow_after=0.1s, async)" in message
    stack = message.split("It is running here:\n")[1]
    # The coroutine's chain of awaits, outermost first: the receiver, then what it awaits.
    assert stack.index(", in notify\n") < stack.index(", in call_the_gateway\n") < stack.index(", in async_wait_until")
    assert (list(report.slow), list(report.succeeded)) == ([sub], [sub])
    assert not _slow_tasks()  # forgotten as the receiver ended


@pytest.mark.asyncio
async def test_a_receiver_task_is_timed_from_its_first_suspension_not_from_a_first_step_that_blocks_the_loop(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(slow_after=0.3)

    async def blocks_in_its_first_step(event: Event) -> None:
        time.sleep(0.6)  # noqa: ASYNC251 - blocking the loop is the point: the next first step waits
        await asyncio.sleep(0.01)

    async def quick(event: Event) -> None:
        await asyncio.sleep(0.01)

    bus.subscribe(Demo.PING, blocks_in_its_first_step)
    bus.subscribe(Demo.PING, quick)
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = await bus.publish(Event(Demo.PING))
        await asyncio.sleep(0.1)  # rounds of the watchdog: a wrong warning would come now
    assert list(report.slow) == []
    assert log_records(caplog, logging.WARNING, SLOW) == []
    assert bus.stats()["slow_receivers"] == 0


@pytest.mark.asyncio
async def test_slow_async_receivers_in_tasks_of_their_own_are_each_warned_and_a_fast_one_is_not(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(slow_after=0.1)

    async def slow_one(event: Event) -> None:
        await async_wait_until(_warned(bus, 2), 5.0)

    async def slow_two(event: Event) -> None:
        await async_wait_until(_warned(bus, 2), 5.0)

    async def quick(event: Event) -> None:
        await asyncio.sleep(0)

    one, two, fast = (bus.subscribe(Demo.PING, fn) for fn in (slow_one, slow_two, quick))
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = await bus.publish(Event(Demo.PING))
    messages = [r.getMessage() for r in log_records(caplog, logging.WARNING, SLOW)]
    assert sorted(m.split(" is slow")[0] for m in messages) == sorted(f"receiver {s.name}" for s in (one, two))
    assert set(report.slow) == {one, two}
    assert fast in report.succeeded
    assert wait_until(lambda: not _slow_tasks(), 2.0)  # the watchdog forgot the ended tasks


def test_a_slow_async_receiver_on_the_bus_loop_is_warned(new_bus: BusFactory, caplog: pytest.LogCaptureFixture) -> None:
    bus = new_bus(slow_after=0.1)

    async def on_the_bus_loop(event: Event) -> None:
        await async_wait_until(_warned(bus), 5.0)

    sub = bus.subscribe(Demo.PING, on_the_bus_loop)
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = bus.publish_sync(Event(Demo.PING))  # no loop here: the bus loop runs it
    (record,) = log_records(caplog, logging.WARNING, SLOW)
    assert ", in on_the_bus_loop\n" in record.getMessage()
    assert (list(report.slow), list(report.succeeded)) == ([sub], [sub])


def test_a_receiver_that_times_out_after_being_slow_gets_both_warnings(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture, release: threading.Event
) -> None:
    bus = new_bus(slow_after=0.1, timeout=0.5)

    def hangs(event: Event) -> None:
        release.wait(5.0)

    sub = bus.subscribe(Demo.PING, hangs)
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        future = bus.publish_nowait(Event(Demo.PING))
        report = future.result(10)  # released at the timeout: the run moved on
    assert log_records(caplog, logging.WARNING, SLOW) != []
    assert log_records(caplog, logging.WARNING, f"receiver {sub.name} overran its timeout") != []
    assert (list(report.slow), list(report.timed_out)) == ([sub], [sub])
    assert bus.stats()["slow_receivers"] == 1


@pytest.mark.asyncio
async def test_an_async_receiver_that_times_out_after_being_slow_gets_both(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(slow_after=0.1, timeout=0.6)

    async def hangs(event: Event) -> None:
        await asyncio.sleep(30)

    sub = bus.subscribe(Demo.PING, hangs)
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = await bus.publish(Event(Demo.PING))
    assert len(log_records(caplog, logging.WARNING, SLOW)) == 1
    assert (list(report.slow), list(report.timed_out)) == ([sub], [sub])


def test_an_outer_receiver_stays_watched_across_a_quick_nested_publish(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(slow_after=0.1)
    bus.subscribe(Demo.PONG, lambda event: None)

    def outer(event: Event) -> None:
        bus.publish_sync(Event(Demo.PONG))
        assert wait_until(_warned(bus), 5.0)

    sub = bus.subscribe(Demo.PING, outer)
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = bus.publish_sync(Event(Demo.PING))
    (record,) = log_records(caplog, logging.WARNING, SLOW)
    assert f"receiver {sub.name} is slow" in record.getMessage()
    assert list(report.slow) == [sub]
    (inner,) = bus.get_delivery_reports(Demo.PONG)
    assert list(inner.slow) == []


def test_many_threads_publishing_to_a_slow_receiver_get_one_warning_per_call(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(slow_after=0.05)
    started = threading.Barrier(8)

    def slowish(event: Event) -> None:
        assert wait_until(_warned(bus, 8), 10.0)

    bus.subscribe(Demo.PING, slowish)

    def publisher() -> None:
        started.wait(5)
        bus.publish_sync(Event(Demo.PING))

    threads = [threading.Thread(target=publisher) for _ in range(8)]
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
    assert len(log_records(caplog, logging.WARNING, SLOW)) == 8
    assert bus.stats()["slow_receivers"] == 8
    assert all(len(r.slow) == 1 for r in bus.get_delivery_reports())


def test_a_hostile_event_is_described_in_the_warning(new_bus: BusFactory, caplog: pytest.LogCaptureFixture) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    bus = new_bus(slow_after=0.05)
    bus.subscribe(Demo.PING, lambda event: wait_until(_warned(bus), 5.0))
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = bus.publish_sync(Event(Demo.PING, {"a": Hostile(), "big": "y" * 100_000}))
    (record,) = log_records(caplog, logging.WARNING, SLOW)
    assert "<Hostile instance at 0x" in record.getMessage()
    assert len(record.getMessage().split(" It is running here")[0]) < 1000
    assert len(report.slow) == 1


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("1", TypeError, "slow_after must be a number of seconds or None, not str"),
        (True, TypeError, "slow_after must be a number of seconds or None, not bool"),
        (0, ValueError, "slow_after must be a positive number of seconds"),
        (-1.0, ValueError, "slow_after must be a positive number of seconds"),
        (float("nan"), ValueError, "slow_after must be a positive number of seconds"),
    ],
)
def test_a_bad_slow_after_raises_naming_it_and_changes_nothing(
    bus: EventBus, value: object, error: type[Exception], message: str
) -> None:
    before = bus.settings
    with pytest.raises(error, match=message):
        bus.configure(slow_after=value)
    with pytest.raises(error, match=message.replace("slow_after", "seconds")):
        bus.set_slow_after(value)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        EventBus(slow_after=value)  # type: ignore[arg-type]
    assert bus.settings is before


def test_slow_after_is_a_setting_like_the_others(bus: EventBus) -> None:
    bus.set_slow_after(2)
    assert (bus.slow_after, bus.settings.slow_after) == (2.0, 2.0)
    assert type(bus.slow_after) is float
    bus.configure(slow_after=None)
    assert bus.slow_after is None
    assert "slow_after" in lowlevel.SETTING_NAMES
    assert lowlevel.default_of("slow_after") is None


def test_flask_apps_get_slow_after_from_their_config() -> None:
    pytest.importorskip("flask")
    from flask import Flask

    from blinker_events.flask import BlinkerEvents, get_bus

    app = Flask(__name__)
    app.config.update(BLINKER_EVENTS_OWN_BUS=True, BLINKER_EVENTS_SLOW_AFTER=0.25)
    extension = BlinkerEvents(app)
    try:
        assert get_bus(app).slow_after == 0.25
    finally:
        extension.shutdown_app(app)
    bad = Flask(__name__)
    bad.config.update(BLINKER_EVENTS_OWN_BUS=True, BLINKER_EVENTS_SLOW_AFTER=-1)
    with pytest.raises(ValueError, match="BLINKER_EVENTS_SLOW_AFTER must be a positive number"):
        BlinkerEvents(bad)


def _slow_tasks() -> set[object]:
    from blinker_events._watchdog import watchdog

    return set(watchdog.slow_tasks)


@pytest.mark.asyncio
async def test_a_cancelled_publish_leaves_nothing_watched_and_no_late_warning(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(slow_after=0.3)
    started = asyncio.Event()

    async def waits(event: Event) -> None:
        started.set()
        await asyncio.sleep(30)

    bus.subscribe(Demo.PING, waits)
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        publish = asyncio.ensure_future(bus.publish(Event(Demo.PING)))
        await asyncio.wait_for(started.wait(), 5)
        publish.cancel()
        with pytest.raises(asyncio.CancelledError):
            await publish
        assert not _slow_tasks()  # forgotten at once: the receiver ran in the publisher's task
        await asyncio.sleep(0.6)  # past slow_after: nothing is still watched to warn about
    assert log_records(caplog, logging.WARNING, SLOW) == []
    assert bus.stats()["slow_receivers"] == 0


def test_a_hung_receiver_is_warned_about_once_however_long_it_hangs(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(slow_after=0.05)
    bus.subscribe(Demo.PING, lambda event: time.sleep(0.6))  # some 50 watchdog rounds past slow_after
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        bus.publish_sync(Event(Demo.PING))
    assert len(log_records(caplog, logging.WARNING, SLOW)) == 1


def test_an_awaitable_whose_attributes_raise_still_gets_its_warning(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    class Awkward:
        """An awaitable whose every unknown attribute raises."""

        def __await__(self):  # type: ignore[no-untyped-def]
            return (yield from asyncio.sleep(0.4).__await__())

        def __getattr__(self, name: str) -> object:
            raise RuntimeError(f"no {name} here")

    def awkward(event: Event) -> Awkward:
        return Awkward()

    bus = new_bus(slow_after=0.05)
    bus.subscribe(Demo.PING, markcoroutinefunction(awkward))
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        report = bus.publish_sync(Event(Demo.PING))
    (record,) = log_records(caplog, logging.WARNING, SLOW)
    assert "(no coroutine stack to show for <" in record.getMessage()
    assert len(report.slow) == 1


def test_configure_turns_the_warning_on_and_off_for_the_next_publish(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    bus.subscribe(Demo.PING, lambda event: time.sleep(0.3))
    bus.configure(slow_after=0.05)
    with caplog.at_level(logging.WARNING, logger="blinker_events"):
        assert len(bus.publish_sync(Event(Demo.PING)).slow) == 1
        bus.set_slow_after(None)
        assert len(bus.publish_sync(Event(Demo.PING)).slow) == 0
    assert len(log_records(caplog, logging.WARNING, SLOW)) == 1
    assert bus.stats()["slow_receivers"] == 1
