"""Waiting for an event: ``bus.expect`` (a waiter observed from the start
of its block), ``bus.wait_for``, on all three publish paths, with
timeouts, cancellation, threads and closed loops."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from typing import Any

import pytest

import blinker_events
from blinker_events import Event, EventBus, EventTimeoutError, TypedEvent, Waiter

from .conftest import WAIT, Demo, log_records

PATHS = ["sync", "async", "nowait"]


async def publish_by(bus: EventBus, path: str, event: Event) -> None:
    """Publish ``event`` on ``path`` (``nowait`` does not wait for it)."""
    if path == "sync":
        bus.publish_sync(event)
    elif path == "async":
        await bus.publish(event)
    else:
        bus.publish_nowait(event)


@pytest.mark.asyncio
@pytest.mark.parametrize("path", PATHS)
async def test_expect_returns_the_event_published_inside_its_block(bus: EventBus, path: str) -> None:
    event = Event(Demo.PING, {"n": 1})
    async with bus.expect(Demo.PING, timeout=WAIT) as waiter:
        await publish_by(bus, path, event)
        got = await waiter
    assert got is event
    assert waiter.event is event
    assert waiter.done()


@pytest.mark.asyncio
@pytest.mark.parametrize("path", PATHS)
async def test_expect_skips_other_types_and_events_the_predicate_refuses(bus: EventBus, path: str) -> None:
    async with bus.expect(Demo.PING, lambda e: e.data["order"] == 42, timeout=WAIT) as waiter:
        await publish_by(bus, path, Event(Demo.PONG, {"order": 42}))
        await publish_by(bus, path, Event(Demo.PING, {"order": 41}))
        wanted = Event(Demo.PING, {"order": 42})
        await publish_by(bus, path, wanted)
        await publish_by(bus, path, Event(Demo.PING, {"order": 42}))
        assert await waiter is wanted


@pytest.mark.asyncio
async def test_expect_wakes_after_the_events_receivers_ran_on_the_worker(bus: EventBus) -> None:
    done: list[int] = []

    def slow_receiver(event: Event) -> None:
        time.sleep(0.05)
        done.append(event.data["n"])

    bus.subscribe(Demo.PING, slow_receiver)
    async with bus.expect(Demo.PING, timeout=WAIT) as waiter:
        bus.publish_nowait(Event(Demo.PING, {"n": 7}))
        await waiter
    assert done == [7]


@pytest.mark.asyncio
async def test_expect_times_out_with_event_timeout_error(bus: EventBus) -> None:
    started = time.monotonic()
    async with bus.expect(Demo.PING, timeout=0.2) as waiter:
        bus.publish_sync(Event(Demo.PONG))
        with pytest.raises(EventTimeoutError, match=r"expect: no Demo\.PING event within 0\.2s") as caught:
            await waiter
    assert time.monotonic() - started < WAIT
    assert isinstance(caught.value, TimeoutError)
    assert bus._history.observers == ()


def test_wait_times_out_in_a_thread(bus: EventBus) -> None:
    started = time.monotonic()
    with bus.expect(Demo.PING, timeout=0.2) as waiter, pytest.raises(EventTimeoutError):
        waiter.wait()
    assert time.monotonic() - started < WAIT


@pytest.mark.asyncio
async def test_cancelling_the_await_leaves_the_waiter_waiting_and_the_block_stops_it(bus: EventBus) -> None:
    async with bus.expect(Demo.PING, timeout=WAIT) as waiter:
        task = asyncio.ensure_future(waiter._wait_async())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert waiter._wakers == []
        event = Event(Demo.PING)
        bus.publish_sync(event)
        assert await waiter is event
    assert bus._history.observers == ()


@pytest.mark.asyncio
async def test_a_cancelled_wait_for_stops_observing(bus: EventBus) -> None:
    task = asyncio.ensure_future(bus.wait_for(Demo.PING, timeout=WAIT))
    await asyncio.sleep(0.01)
    assert len(bus._history.observers) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bus._history.observers == ()


def test_wait_in_a_thread_gets_an_event_another_thread_publishes(bus: EventBus) -> None:
    event = Event(Demo.PING, {"n": 3})
    with bus.expect(Demo.PING, timeout=WAIT) as waiter:
        threading.Thread(target=bus.publish_sync, args=(event,)).start()
        assert waiter.wait() is event


@pytest.mark.asyncio
async def test_wait_refuses_to_block_a_running_loop(bus: EventBus) -> None:
    with bus.expect(Demo.PING, timeout=WAIT) as waiter, pytest.raises(RuntimeError, match="running event loop"):
        waiter.wait()


@pytest.mark.asyncio
async def test_wait_for_misses_what_was_published_before_it(bus: EventBus) -> None:
    bus.publish_sync(Event(Demo.PING))
    with pytest.raises(EventTimeoutError):
        await bus.wait_for(Demo.PING, timeout=0.2)


@pytest.mark.asyncio
async def test_wait_for_gets_an_event_published_while_it_waits(bus: EventBus) -> None:
    event = Event(Demo.PING)
    asyncio.get_running_loop().call_later(0.01, bus.publish_nowait, event)
    assert await bus.wait_for(Demo.PING, timeout=WAIT) is event


@pytest.mark.asyncio
async def test_awaiting_after_the_block_without_an_event_is_an_error(bus: EventBus) -> None:
    async with bus.expect(Demo.PING, timeout=WAIT) as waiter:
        pass
    with pytest.raises(RuntimeError, match="with block ended"):
        await waiter


@pytest.mark.asyncio
async def test_awaiting_after_the_block_with_the_event_returns_it(bus: EventBus) -> None:
    event = Event(Demo.PING)
    async with bus.expect(Demo.PING, timeout=WAIT) as waiter:
        bus.publish_sync(event)
    assert await waiter is event


def test_a_waiter_is_entered_once(bus: EventBus) -> None:
    waiter = bus.expect(Demo.PING)
    with waiter, pytest.raises(RuntimeError, match="entered once"), waiter:
        pass


@pytest.mark.asyncio
async def test_a_raising_predicate_is_raised_to_the_waiter_and_logged_not_to_the_publisher(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Event] = []
    bus.subscribe(Demo.PING, seen.append)

    def predicate(event: Event) -> bool:
        raise LookupError("no order")

    async with bus.expect(Demo.PING, predicate, timeout=WAIT) as waiter:
        report = bus.publish_sync(Event(Demo.PING))
        with pytest.raises(LookupError, match="no order"):
            await waiter
    assert report.ok
    assert len(seen) == 1
    assert len(log_records(caplog, logging.ERROR, "expect: the predicate")) == 1


@pytest.mark.asyncio
async def test_a_predicate_raising_system_exit_does_not_end_the_worker(bus: EventBus) -> None:
    def predicate(event: Event) -> bool:
        raise SystemExit(3)

    async with bus.expect(Demo.PING, predicate, timeout=WAIT) as waiter:
        bus.publish_nowait(Event(Demo.PING))
        with pytest.raises(SystemExit):
            await waiter
    later = Event(Demo.PING)
    assert await asyncio.wrap_future(bus.publish_nowait(later)) is not None
    assert bus.get_history()[-1] is later


@pytest.mark.asyncio
async def test_a_waiter_is_not_a_subscription_and_works_with_history_off(new_bus: Any) -> None:
    bus = new_bus(history_size=0)
    async with bus.expect(Demo.PING, timeout=WAIT) as waiter:
        assert bus.get_subscriber_count() == 0
        assert bus.get_subscriptions() == []
        event = Event(Demo.PING)
        bus.publish_sync(event)
        assert await waiter is event
    assert bus.get_history() == []


@pytest.mark.asyncio
async def test_expect_with_no_type_takes_any_event(bus: EventBus) -> None:
    event = Event("anything")
    async with bus.expect(None, timeout=WAIT) as waiter:
        bus.publish_sync(event)
        assert await waiter is event


def test_expect_checks_its_arguments() -> None:
    bus = EventBus()
    with pytest.raises(TypeError, match="event_type must be"):
        bus.expect(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="predicate must be callable or None, not str"):
        bus.expect(Demo.PING, "yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        bus.expect(Demo.PING, timeout=-1)
    assert bus._history.observers == ()


def test_a_waiter_on_a_closed_loop_does_not_make_a_publisher_raise(bus: EventBus) -> None:
    loop = asyncio.new_event_loop()
    waiter = bus.expect(Demo.PING, timeout=WAIT)
    waiter.__enter__()

    async def wait() -> Event:
        return await waiter

    task = loop.create_task(wait())
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(waiter._wakers) == 1
    loop.close()  # the waiting task never ends
    event = Event(Demo.PING)
    report = bus.publish_sync(event)
    assert report.ok
    assert waiter.event is event
    waiter.__exit__(None, None, None)
    del task
    gc.collect()


def test_many_threads_publishing_wake_exactly_one_first_match(bus: EventBus) -> None:
    events = [Event(Demo.PING, {"n": n}) for n in range(200)]
    with bus.expect(Demo.PING, lambda e: e.data["n"] % 50 == 49, timeout=WAIT) as waiter:
        threads = [
            threading.Thread(target=lambda chunk=events[i::4]: [bus.publish_sync(e) for e in chunk]) for i in range(4)
        ]
        for thread in threads:
            thread.start()
        got = waiter.wait()
        for thread in threads:
            thread.join()
    assert got.data["n"] % 50 == 49
    assert bus._history.observers == ()


def test_module_level_expect_acts_on_the_default_bus() -> None:
    event = Event(Demo.OTHER, {"module": True})
    with blinker_events.expect(Demo.OTHER, timeout=WAIT) as waiter:
        blinker_events.publish_sync(event)
        assert waiter.wait() is event
    assert isinstance(waiter, Waiter)
    assert blinker_events.default_bus._history.observers == ()
    blinker_events.clear_history()


def test_waiters_come_and_go_while_threads_publish(bus: EventBus) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def publish_noise() -> None:
        try:
            while not stop.is_set():
                bus.publish_sync(Event(Demo.PONG))
        except BaseException as exc:  # pragma: no cover - the test fails on it
            errors.append(exc)

    publishers = [threading.Thread(target=publish_noise) for _ in range(3)]
    for publisher in publishers:
        publisher.start()
    try:
        for n in range(30):
            with bus.expect(Demo.PING, lambda e, n=n: e.data["n"] == n, timeout=WAIT) as waiter:
                threading.Thread(target=bus.publish_nowait, args=(Event(Demo.PING, {"n": n}),)).start()
                assert waiter.wait().data["n"] == n
            with bus.stream(Demo.PONG, maxsize=4) as noise:
                assert next(noise).event_type is Demo.PONG
    finally:
        stop.set()
        for publisher in publishers:
            publisher.join()
    assert errors == []
    assert bus._history.observers == ()
    assert type(bus._history).__name__ == "History"  # the unobserved class again


@pytest.mark.asyncio
async def test_an_outer_timeout_cancelling_wait_for_stops_observing(bus: EventBus) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(bus.wait_for(Demo.PING), 0.1)
    assert bus._history.observers == ()


def test_a_predicate_whose_repr_raises_is_described_safely(bus: EventBus) -> None:
    class Hostile:
        def __call__(self, event: Event) -> bool:
            return False

        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    with bus.expect("x" * 10_000, Hostile(), timeout=0.05) as waiter:
        with pytest.raises(EventTimeoutError) as caught:
            waiter.wait()
        assert "matching <Hostile instance at 0x" in repr(waiter)
    message = str(caught.value)
    assert "matching <" in message
    assert "Hostile instance at 0x" in message
    assert len(message) < 1000


class _Placed(TypedEvent):
    order_id: int


class _PlacedAbroad(_Placed):
    country: str


def test_waiting_for_a_typed_event_class_matches_its_subclasses_as_its_receivers_do(bus: EventBus) -> None:
    with bus.expect(_Placed, lambda event: event.order_id == 7, timeout=WAIT) as waiter:
        bus.publish_sync(_PlacedAbroad(order_id=6, country="NL"))  # the predicate refuses it
        bus.publish_sync(_PlacedAbroad(order_id=7, country="FR"))
        event = waiter.wait()
    assert (type(event), event.order_id) == (_PlacedAbroad, 7)
    with bus.stream(_PlacedAbroad, timeout=WAIT) as events:
        bus.publish_sync(_Placed(order_id=8))  # a base class's event is not a subclass's
        bus.publish_sync(_PlacedAbroad(order_id=9, country="BE"))
        assert next(events).order_id == 9
