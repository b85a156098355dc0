"""Streaming events: ``bus.stream``, with its bounded buffer, on all three
publish paths; it stops observing however its consumer stops."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time

import pytest

from blinker_events import Event, EventBus, EventStream, EventTimeoutError

from .conftest import WAIT, Demo, log_records, wait_until
from .test_waiting import PATHS, publish_by


@pytest.mark.asyncio
@pytest.mark.parametrize("path", PATHS)
async def test_stream_yields_matching_events_in_publish_order(bus: EventBus, path: str) -> None:
    async with bus.stream(Demo.PING, lambda e: e.data["n"] % 2 == 0, timeout=WAIT) as events:
        for n in range(6):
            await publish_by(bus, path, Event(Demo.PING, {"n": n}))
            await publish_by(bus, path, Event(Demo.PONG, {"n": n}))
        got = [(await anext(events)).data["n"] for _ in range(3)]
    assert got == [0, 2, 4]
    assert events.dropped == 0


@pytest.mark.asyncio
async def test_a_full_buffer_drops_the_oldest_counted_and_logged(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    with bus.stream(Demo.PING, maxsize=2, timeout=WAIT) as events:
        for n in range(5):
            bus.publish_sync(Event(Demo.PING, {"n": n}))
        assert len(events) == 2
        assert events.dropped == 3
        assert [(await anext(events)).data["n"] for _ in range(2)] == [3, 4]
    drops = log_records(caplog, logging.WARNING, "stream for Demo.PING event full (2): dropped the oldest")
    assert [r.getMessage().endswith(f"({n} dropped so far)") for n, r in enumerate(drops, 1)] == [True] * 3
    assert "dropped" in repr(events)


@pytest.mark.asyncio
async def test_stream_waiting_times_out_and_stays_usable(bus: EventBus) -> None:
    events = bus.stream(Demo.PING, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(EventTimeoutError, match=r"stream: no Demo\.PING event within 0\.2s"):
        await anext(events)
    assert time.monotonic() - started < WAIT
    event = Event(Demo.PING)
    bus.publish_sync(event)
    assert await anext(events) is event
    events.close()


@pytest.mark.asyncio
async def test_breaking_out_of_async_for_stops_observing(bus: EventBus) -> None:
    asyncio.get_running_loop().call_soon(bus.publish_sync, Event(Demo.PING))
    async for _ in bus.stream(Demo.PING, timeout=WAIT):
        break
    gc.collect()
    assert bus._history.observers == ()


@pytest.mark.asyncio
async def test_an_exception_in_the_consumer_stops_observing(bus: EventBus) -> None:
    async def consume() -> None:
        async for _ in bus.stream(Demo.PING, timeout=WAIT):
            raise LookupError("consumer failed")

    asyncio.get_running_loop().call_soon(bus.publish_sync, Event(Demo.PING))
    with pytest.raises(LookupError):
        await consume()
    gc.collect()
    assert bus._history.observers == ()


@pytest.mark.asyncio
async def test_cancelling_the_consumer_stops_observing(bus: EventBus) -> None:
    consumed: list[Event] = []

    async def consume() -> None:
        async for event in bus.stream(Demo.PING):
            consumed.append(event)

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.01)
    bus.publish_nowait(Event(Demo.PING))
    assert await _eventually(lambda: len(consumed) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    del task
    await asyncio.sleep(0)  # the loop lets go of the finished task
    gc.collect()
    assert bus._history.observers == ()


async def _eventually(predicate: object) -> bool:
    deadline = time.monotonic() + WAIT
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


@pytest.mark.asyncio
async def test_closing_ends_the_iteration_after_what_was_buffered(bus: EventBus) -> None:
    events = bus.stream(Demo.PING, timeout=WAIT)
    first = Event(Demo.PING)
    bus.publish_sync(first)
    events.close()
    bus.publish_sync(Event(Demo.PING))
    assert [e async for e in events] == [first]
    assert events.closed
    assert bus._history.observers == ()


@pytest.mark.asyncio
async def test_closing_wakes_a_consumer_waiting_for_the_next_event(bus: EventBus) -> None:
    events = bus.stream(Demo.PING, timeout=WAIT)
    task = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.01)
    threading.Thread(target=events.close).start()
    with pytest.raises(StopAsyncIteration):
        await task


def test_a_thread_iterates_a_stream_with_for(bus: EventBus) -> None:
    got: list[int] = []
    with bus.stream(Demo.PING, timeout=WAIT) as events:

        def consume() -> None:
            for event in events:
                got.append(event.data["n"])
                if len(got) == 3:
                    return

        consumer = threading.Thread(target=consume)
        consumer.start()
        for n in range(3):
            bus.publish_nowait(Event(Demo.PING, {"n": n}))
        consumer.join(WAIT)
    assert got == [0, 1, 2]


@pytest.mark.asyncio
async def test_for_refuses_to_block_a_running_loop(bus: EventBus) -> None:
    with bus.stream(Demo.PING) as events, pytest.raises(RuntimeError, match="running event loop"):
        next(events)


def test_many_threads_publishing_lose_nothing_uncounted(bus: EventBus) -> None:
    threads, each = 4, 250
    with bus.stream(Demo.PING, maxsize=64, timeout=WAIT) as events:
        publishers = [
            threading.Thread(
                target=lambda t=t: [bus.publish_sync(Event(Demo.PING, {"n": (t, i)})) for i in range(each)]
            )
            for t in range(threads)
        ]
        for publisher in publishers:
            publisher.start()
        for publisher in publishers:
            publisher.join()
        got = []
        while len(events):
            got.append(next(events).data["n"])
    assert len(got) + events.dropped == threads * each
    assert len(got) == 64
    assert len(set(got)) == 64
    for t in range(threads):  # each publisher's events stay in its order
        mine = [i for (who, i) in got if who == t]
        assert mine == sorted(mine)


@pytest.mark.asyncio
async def test_a_raising_predicate_reaches_the_consumer_in_the_events_place(bus: EventBus) -> None:
    def predicate(event: Event) -> bool:
        if event.data.get("bad"):
            raise ValueError("bad event")
        return True

    with bus.stream(Demo.PING, predicate, timeout=WAIT) as events:
        good = Event(Demo.PING)
        report = bus.publish_sync(Event(Demo.PING, {"bad": True}))
        bus.publish_sync(good)
        with pytest.raises(ValueError, match="bad event"):
            await anext(events)
        assert await anext(events) is good
    assert report.ok


def test_a_stream_on_a_closed_loop_does_not_make_a_publisher_raise(bus: EventBus) -> None:
    events = bus.stream(Demo.PING, timeout=WAIT)
    loop = asyncio.new_event_loop()
    task = loop.create_task(anext(events))  # type: ignore[arg-type]
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    report = bus.publish_sync(Event(Demo.PING))
    assert report.ok
    assert len(events) == 1
    events.close()
    del task
    gc.collect()


def test_stream_checks_its_arguments(bus: EventBus) -> None:
    with pytest.raises(ValueError, match="maxsize must be at least 1, not 0"):
        bus.stream(Demo.PING, maxsize=0)
    with pytest.raises(TypeError, match="maxsize must be an integer"):
        bus.stream(Demo.PING, maxsize=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="predicate must be callable"):
        bus.stream(Demo.PING, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="timeout must be"):
        bus.stream(Demo.PING, timeout="1")  # type: ignore[arg-type]
    assert bus._history.observers == ()


def test_an_event_with_hostile_data_is_streamed_and_described_safely(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    with bus.stream(Demo.PING, maxsize=1) as events:
        bus.publish_sync(Event(Demo.PING, {"h": Hostile(), "big": "x" * 1_000_000}))
        bus.publish_sync(Event(Demo.PING))
        assert events.dropped == 1
    (record,) = log_records(caplog, logging.WARNING, "dropped the oldest")
    assert "instance at 0x" in record.getMessage()  # described by reprlib, not its raising __repr__
    assert len(record.getMessage()) < 1000


def test_a_dropped_stream_is_collected_and_stops_observing(bus: EventBus) -> None:
    events: EventStream | None = bus.stream(Demo.PING)
    assert len(bus._history.observers) == 1
    events = None
    assert wait_until(lambda: gc.collect() is not None and bus._history.observers == ())
    assert events is None


@pytest.mark.asyncio
async def test_two_consumers_of_one_stream_are_both_woken(bus: EventBus) -> None:
    events = bus.stream(Demo.PING, timeout=WAIT)
    first = asyncio.ensure_future(anext(events))
    second = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.01)
    bus.publish_sync(Event(Demo.PING, {"n": 1}))
    bus.publish_sync(Event(Demo.PING, {"n": 2}))
    got = await asyncio.gather(first, second)
    assert sorted(e.data["n"] for e in got) == [1, 2]
    events.close()


def test_closing_from_another_thread_ends_a_for_loop_waiting_in_a_thread(bus: EventBus) -> None:
    events = bus.stream(Demo.PING, timeout=WAIT)
    ended = threading.Event()

    def consume() -> None:
        for _ in events:
            pass
        ended.set()

    threading.Thread(target=consume).start()
    time.sleep(0.01)
    events.close()
    assert ended.wait(WAIT)
