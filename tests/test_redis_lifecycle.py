"""A Redis bridge's life: starting and stopping it (from any thread, loop or
receiver, racing each other or a bus shutdown), an async app that never stops
it, a dead or hung redis at shutdown, and a forked child -- each against a
real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Awaitable, Callable

import pytest

from blinker_events import Event, EventBus, QueueFullError, lowlevel
from blinker_events.redis import RedisBridge, _bridge
from blinker_events.redis.testing import RedisServer
from tests.conftest import HANG, REDIS_WAIT, WAIT, Demo, hold_the_worker, pending, wait_for, wait_until


def test_bus_shutdown_without_timeout_does_not_wait_forever_for_a_dead_redis(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_bridge, "CLOSE_FLUSH_SECONDS", 0.5)
    bus = EventBus()
    bridge = RedisBridge(bus, redis_server.url, stream="s")
    assert bridge.start()
    redis_server.kill()
    bus.publish_sync(Event("job"))
    started = time.monotonic()
    bus.shutdown()  # timeout None: the queue may take its time, Redis may never answer
    assert time.monotonic() - started < 10  # generous: proves the bound, not its size
    assert not bridge.running
    assert bridge.stats()["dropped"] == 1


def test_bus_shutdown_counts_the_events_its_bridge_dropped_with_its_own(
    redis_server: RedisServer, buses: Callable[..., EventBus], gate: threading.Event
) -> None:
    bus = buses()
    bridge = RedisBridge(bus, redis_server.url, stream="s", event_types=["order.created"])
    assert bridge.start()
    redis_server.kill()
    for n in range(5):
        bus.publish_sync(Event("order.created", {"id": n}))
    hold_the_worker(bus, gate, first=0)  # one delivered late, two queued behind it and dropped
    for n in (1, 2):
        bus.publish_nowait(Event(Demo.PING, {"n": n}))
    assert bus.shutdown(timeout=1.0) == 5 + 2
    assert bridge.stats()["dropped"] == 5
    assert not bridge.running


def test_an_event_dropped_by_the_queue_and_by_its_bridge_counts_once_for_each(
    redis_server: RedisServer, buses: Callable[..., EventBus], gate: threading.Event
) -> None:
    """shutdown() counts lost deliveries: the receivers here and the other
    processes both miss an event the queue dropped and the bridge never wrote."""
    bus = buses()
    bridge = RedisBridge(bus, redis_server.url, stream="s", event_types=[Demo.PING])
    assert bridge.start()
    redis_server.kill()
    hold_the_worker(bus, gate, first=0)  # its event was offered to the bridge at publish, like the next two
    futures = [bus.publish_nowait(Event(Demo.PING, {"n": n})) for n in (1, 2)]
    assert bus.shutdown(timeout=1.0) == 2 + 3  # two left in the queue; three unwritten by the bridge
    assert bridge.stats()["dropped"] == 3
    assert all(isinstance(f.exception(0), QueueFullError) for f in futures)


def test_stop_shares_one_timeout_between_reader_and_writer(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    # Was: the reader's batch and the writer's flush each waited the whole
    # timeout, past the caller's own bound: stop() raised TimeoutError.
    sender_bus, bus = buses(), buses(timeout=30)
    release = threading.Event()
    bus.subscribe("slow", lambda e: release.wait(20))
    sender = RedisBridge(sender_bus, redis_server.url, stream="s")
    bridge = RedisBridge(bus, redis_server.url, stream="s")
    assert sender.start()
    assert bridge.start()
    sender_bus.publish_sync(Event("slow"))
    time.sleep(0.5)  # the reader is in its batch now
    redis_server.kill()
    bus.publish_sync(Event("unsendable"))
    started = time.monotonic()
    try:
        assert bridge.stop(timeout=1.0) == 1
    finally:
        release.set()
    assert time.monotonic() - started < 5


def test_stop_racing_start_leaves_no_outlet_behind(redis_server: RedisServer, buses: Callable[..., EventBus]) -> None:
    bus = buses()
    bridge = RedisBridge(bus, redis_server.url, stream="s", mode="group", group="g", direction="out")
    for _ in range(30):
        starter = threading.Thread(target=lambda: bridge.start(timeout=0.05))
        starter.start()
        while not bridge.running and starter.is_alive():
            time.sleep(0)
        bridge.stop(timeout=1)
        starter.join()
        if not bridge.running:
            assert bridge not in lowlevel.outlets(bus)
            assert not bus.publish_sync(Event("job")).handed_off
        else:  # the start came last
            bridge.stop(timeout=1)


def test_events_published_by_the_last_batch_still_go_out(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    # Was: stop() removed the outlet before the reader's last batch ended, so
    # an event its receivers published ran locally instead of going out.
    producer_bus, bus = buses(), buses(timeout=10)
    replies: list[bool] = []

    def on_order(event: Event) -> None:
        time.sleep(0.5)
        replies.append(bus.publish_sync(Event("mail", {"for": event.data["id"]})).handed_off)

    bus.subscribe("order", on_order)
    producer = RedisBridge(producer_bus, redis_server.url, stream="s", mode="group", group="g", direction="out")
    bridge = RedisBridge(bus, redis_server.url, stream="s", mode="group", group="g", event_types=["order", "mail"])
    assert bridge.start()
    assert producer.start()
    producer_bus.publish_sync(Event("order", {"id": 1}))
    time.sleep(0.2)
    assert bridge.stop(timeout=5) == 0
    assert replies == [True]
    assert redis_server.cli("XRANGE", "s", "-", "+").count("mail") == 2  # the type field and the JSON


def test_a_receiver_still_running_after_its_bus_shut_down_ends_without_a_traceback(
    redis_server: RedisServer,
    buses: Callable[..., EventBus],
    gate: threading.Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Was: a group reader waits for its batch's worker futures on the bus
    # loop; a receiver shutdown() left running ended after that loop had
    # closed, and settling its future logged "exception calling callback"
    # with a RuntimeError("Event loop is closed") traceback.
    producer_bus, bus = buses(), buses()
    started = threading.Event()

    def on_order(event: Event) -> None:
        started.set()
        gate.wait(HANG)

    bus.subscribe("order", on_order)
    producer = RedisBridge(producer_bus, redis_server.url, stream="s", mode="group", group="g", direction="out")
    bridge = RedisBridge(bus, redis_server.url, stream="s", mode="group", group="g")
    assert bridge.start()
    assert producer.start()
    producer_bus.publish_sync(Event("order", {"id": 1}))
    assert started.wait(REDIS_WAIT)
    bus.shutdown(timeout=0.05)
    assert lowlevel.left_running(bus) == 1
    gate.set()
    assert lowlevel.drain(bus, WAIT) == 0  # returns once the job's future was settled
    assert [r.getMessage() for r in caplog.records if r.name == "concurrent.futures"] == []
    assert pending(redis_server) == 1  # never acknowledged: another node or a restart gets it


def _stubborn(
    started: threading.Event | asyncio.Event, ended: threading.Event | asyncio.Event
) -> Callable[[Event], Awaitable[None]]:
    """An async receiver that swallows every cancellation for 2 s."""

    async def receiver(event: Event) -> None:
        started.set()
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.02)
        ended.set()

    return receiver


def test_bus_shutdown_is_not_held_by_a_single_async_receiver_that_ignores_its_cancellation(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    # Was: the reader, on the bus loop, ran a single async receiver in its
    # own task, and shutdown(timeout=0.05) waited for as long as that
    # receiver swallowed its cancellations.
    producer_bus, bus = buses(), buses()
    started, ended = threading.Event(), threading.Event()
    bus.subscribe("order", _stubborn(started, ended))
    producer = RedisBridge(producer_bus, redis_server.url, stream="s", direction="out")
    bridge = RedisBridge(bus, redis_server.url, stream="s", direction="in")
    assert bridge.start()
    assert producer.start()
    producer_bus.publish_sync(Event("order", {"id": 1}))
    assert started.wait(REDIS_WAIT)
    begun = time.monotonic()
    bus.shutdown(timeout=0.05)
    assert time.monotonic() - begun < 1.5  # generous: the receiver holds on for 2 s
    assert not bridge.running
    assert ended.wait(WAIT)


def test_stop_async_keeps_its_timeout_when_a_receiver_on_the_app_loop_ignores_its_cancellation(
    redis_server: RedisServer, buses: Callable[..., EventBus], caplog: pytest.LogCaptureFixture
) -> None:
    # Was: on the app's loop a single async receiver runs in the reader's
    # task, and stop_async(timeout=0.1) waited for as long as it swallowed
    # its cancellations. Now the stop goes on without the reader, says so,
    # and the reader is cancelled until it ends.
    producer_bus, bus = buses(), buses()

    async def main() -> float:
        started, ended = asyncio.Event(), asyncio.Event()
        bus.subscribe("order", _stubborn(started, ended))
        bridge = RedisBridge(bus, redis_server.url, stream="s", direction="in")
        assert await bridge.start_async()
        producer_bus.publish_sync(Event("order", {"id": 1}))
        await asyncio.wait_for(started.wait(), REDIS_WAIT)
        begun = time.monotonic()
        assert await bridge.stop_async(timeout=0.1) == 0
        elapsed = time.monotonic() - begun
        await asyncio.wait_for(ended.wait(), WAIT)  # the loop runs on until the receiver ends
        return elapsed

    producer = RedisBridge(producer_bus, redis_server.url, stream="s", direction="out")
    assert producer.start()
    with caplog.at_level(logging.WARNING, "blinker_events"):
        elapsed = asyncio.run(main())
    assert elapsed < 1.5  # generous: the receiver holds on for 2 s
    assert "the reader did not end within the stop's timeout" in caplog.text


def test_an_async_app_that_never_stops_its_bridge_still_writes_its_events(redis_server: RedisServer) -> None:
    # Was: asyncio.run cancelled the writer at its end and 1,000 buffered
    # events were dropped at exit.
    code = textwrap.dedent(f"""
        import asyncio
        from blinker_events import Event, EventBus
        from blinker_events.redis import RedisBridge

        async def main():
            bus = EventBus()
            bridge = RedisBridge(bus, "{redis_server.url}", stream="s")
            await bridge.start_async()
            for i in range(1000):
                await bus.publish(Event("job", {{"i": i}}))

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert redis_server.cli("XLEN", "s").strip() == "1000"


@pytest.mark.asyncio
async def test_stop_async_from_another_loop_waits_for_the_close(redis_server: RedisServer) -> None:
    bus = EventBus()
    bridge = RedisBridge(bus, redis_server.url, stream="s", direction="out")
    assert await asyncio.to_thread(bridge.start)  # on the bus's loop thread
    await bus.publish(Event("job"))
    assert await bridge.stop_async() == 0
    assert redis_server.cli("XLEN", "s").strip() == "1"
    bus.shutdown(timeout=10)


def _connections(redis_server: RedisServer) -> int:
    """How many clients the server has, besides the one asking."""
    return len(redis_server.cli("CLIENT", "LIST").splitlines()) - 1


def test_an_async_app_that_never_stops_its_bridge_closes_its_connection(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    # Was: the bridge stopped as its loop cancelled it, but left its
    # connection open (a ResourceWarning when collected).
    bus = buses()

    async def main() -> None:
        assert await RedisBridge(bus, redis_server.url, stream="s").start_async()
        await bus.publish(Event("order", {"id": 1}))  # the writer connects too

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        asyncio.run(main())
        gc.collect()  # an unclosed connection warns as it is collected
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
    assert _connections(redis_server) == 0


def test_a_bus_shutdown_by_a_receiver_of_its_bridge_closes_the_connection(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    # Was: the shutdown stopped the loop under the bridge's close, which
    # then never closed the connection.
    producer_bus, bus = buses(), buses()
    returned = threading.Event()

    def on_order(event: Event) -> None:
        bus.shutdown(timeout=0.2)
        returned.set()

    bus.subscribe("order", on_order)
    producer = RedisBridge(producer_bus, redis_server.url, stream="s", direction="out")
    assert producer.start()
    producer_only = _connections(redis_server)
    bridge = RedisBridge(bus, redis_server.url, stream="s", direction="in")
    assert bridge.start()
    producer_bus.publish_sync(Event("order", {"id": 1}))
    assert returned.wait(REDIS_WAIT)
    assert wait_until(lambda: not bridge.running, WAIT)
    assert wait_until(lambda: _connections(redis_server) == producer_only, 2.0)


@pytest.mark.parametrize("shutdown_timeout", [2.0, 0.1], ids=["close-ends-first", "loop-stops-under-the-close"])
def test_stop_racing_a_bus_shutdown_counts_what_it_could_not_write(
    redis_server: RedisServer, buses: Callable[..., EventBus], shutdown_timeout: float
) -> None:
    # Was: the shutdown stopped the loop under the other thread's close, which
    # never counted the batch in hand: events vanished without a word. And
    # with the shutdown's bound the shorter, stop() raised CancelledError
    # instead of returning the count.
    bus = buses()
    bridge = RedisBridge(bus, redis_server.url, stream="s", direction="out")
    assert bridge.start()
    redis_server.kill()
    for n in range(5):
        bus.publish_sync(Event("job", {"n": n}))
    outcome: list[int | BaseException] = []

    def stop() -> None:
        try:
            outcome.append(bridge.stop(timeout=2))
        except BaseException as exc:
            outcome.append(exc)

    stopper = threading.Thread(target=stop)
    stopper.start()
    time.sleep(0.3)
    bus.shutdown(timeout=shutdown_timeout)
    stopper.join(10)
    assert outcome == [5]
    assert bridge.stats()["dropped"] == 5
    assert not bridge.running


def test_stop_called_by_a_receiver_of_the_bridge_does_not_wait_for_itself(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    bus, sender_bus = buses(timeout=10), buses()
    calls: list[float] = []
    group = {"stream": "s", "mode": "group", "group": "g"}
    bridge = RedisBridge(bus, redis_server.url, consumer="c1", direction="in", **group)

    def stop_now(event: Event) -> None:
        started = time.monotonic()
        bridge.stop(timeout=None)
        calls.append(time.monotonic() - started)

    bus.subscribe("stop.now", stop_now)
    sender = RedisBridge(sender_bus, redis_server.url, direction="out", **group)
    assert bridge.start()
    assert sender.start()
    sender_bus.publish_sync(Event("stop.now"))
    wait_for(lambda: len(calls) == 1, "the receiver")
    assert calls[0] < 2  # it returned at once; the close finishes after it
    wait_for(lambda: pending(redis_server) == 0, "its entry acknowledged by the finishing close")
    assert bridge.start()
    time.sleep(0.3)
    assert len(calls) == 1  # not delivered again


def test_a_bridge_started_by_a_receiver_does_not_inherit_its_context(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    # Was: the reader task carried the starting receiver's cycle-guard chain:
    # with max_depth=1 every remote event was refused as too deep.
    bus, sender_bus = buses(max_depth=1), buses()
    got: list[int] = []
    bus.subscribe("job", lambda e: got.append(e.data["n"]))
    bridge = RedisBridge(bus, redis_server.url, stream="s", direction="in")
    bus.subscribe("app.ready", lambda e: bridge.start())
    bus.publish_sync(Event("app.ready"))
    assert bridge.running
    sender = RedisBridge(sender_bus, redis_server.url, stream="s", direction="out")
    assert sender.start()
    sender_bus.publish_sync(Event("job", {"n": 1}))
    wait_for(lambda: got == [1], "the remote event")
    assert bridge.stats()["failed"] == 0


def test_an_async_app_loop_ending_without_stop_async_stops_the_bridge(redis_server: RedisServer) -> None:
    # Was: the bridge stayed "running" with its outlet on the bus, taking
    # events nobody would ever write.
    bus = EventBus()
    bridge = RedisBridge(bus, redis_server.url, stream="s", mode="group", group="g")

    async def app() -> None:
        assert await bridge.start_async()
        await bus.publish(Event("job"))

    asyncio.run(app())
    assert not bridge.running
    assert bridge not in lowlevel.outlets(bus)
    assert not bus.publish_sync(Event("job")).handed_off
    assert redis_server.cli("XLEN", "s").strip() == "1"
    bus.shutdown(timeout=10)


FORK_SCRIPT = """
import os, sys
from blinker_events import Event, EventBus
from blinker_events.redis import RedisBridge

url = sys.argv[1]
bus = EventBus()
async def warm(event):  # the parent used the bus loop before forking
    pass
bus.subscribe("warm", warm)
bus.publish_sync(Event("warm"))
inherited = RedisBridge(bus, url, stream="parent", mode="group", group="g", direction="out")
assert inherited.start()
pid = os.fork()
if pid == 0:
    assert not inherited.running  # a copy of the parent's run is no run
    assert not bus.publish_sync(Event("job")).handed_off
    child = RedisBridge(bus, url, stream="child", direction="out")
    assert child.start(timeout=5)
    bus.publish_sync(Event("from.child"))
    assert child.stop() == 0
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert inherited.stop() == 0
print("ok")
"""


def test_a_forked_child_starts_afresh(redis_server: RedisServer) -> None:
    # Was: the child thought the parent's bridge was running (events taken,
    # never written), and start() waited forever on the parent's loop thread.
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, redis_server.url], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert "Task was destroyed" not in done.stderr
    assert redis_server.cli("XLEN", "child").strip() == "1"
    assert redis_server.cli("XLEN", "parent").strip() == "0"
