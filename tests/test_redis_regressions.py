"""Regression tests for defects a review of the Redis bridge found, each
reproduced against a real redis-server before it was fixed."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from blinker_events import Event, EventBus, lowlevel
from blinker_events.redis import RedisBridge, _bridge
from blinker_events.redis._wire import encode
from blinker_events.redis.testing import RedisServer
from tests.test_redis_bridge import wait_for


@pytest.fixture
def buses() -> Iterator[Callable[..., EventBus]]:
    made: list[EventBus] = []

    def make(**settings: Any) -> EventBus:
        bus = EventBus(**settings)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        bus.shutdown(timeout=10)  # also stops the bridges on it


def pending(redis_server: RedisServer, stream: str = "s", group: str = "g") -> int:
    return int(redis_server.cli("XPENDING", stream, group).split()[0])


def test_an_auto_disabled_receiver_does_not_get_group_work_acknowledged(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    # Was: once the bus disabled the failing receiver, every later entry was
    # "delivered" to nobody and acknowledged -- the work was lost.
    bus = buses(failure_threshold=2)
    calls: list[int] = []

    def charge(event: Event) -> None:
        calls.append(event.data["n"])
        raise RuntimeError("payment service down")

    bus.subscribe("charge", charge)
    bridge = RedisBridge(bus, redis_server.url, stream="s", mode="group", group="g", claim_idle=0.2, max_deliveries=2)
    assert bridge.start()
    for n in range(4):
        bus.publish_sync(Event("charge", {"n": n}))
    wait_for(lambda: bridge.stats()["dead_lettered"] == 4, "every job dead-lettered, none acknowledged as done")
    assert bridge.stats()["delivered"] == 0
    assert pending(redis_server) == 0
    assert sorted(set(calls)) == [0, 1]  # the receiver ran until it was disabled


def test_an_event_with_no_receiver_on_this_node_is_left_for_another(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    idle_bus, worker_bus = buses(), buses()
    done: list[int] = []
    worker_bus.subscribe("job", lambda e: done.append(e.data["n"]))
    idle = RedisBridge(idle_bus, redis_server.url, stream="s", mode="group", group="g", claim_idle=0.2)
    assert idle.start()
    idle_bus.publish_sync(Event("job", {"n": 1}))  # only the idle node consumes yet
    wait_for(lambda: idle.stats()["failed"] >= 1, "the idle node declining it")
    # Stopped, or it would go on claiming and declining it, racing the worker
    # to max_deliveries: the nodes of a group should all take what they carry.
    assert idle.stop() == 0
    worker = RedisBridge(worker_bus, redis_server.url, stream="s", mode="group", group="g", claim_idle=0.2)
    assert worker.start()
    wait_for(lambda: done == [1], "the node with a receiver handling it")


def test_max_deliveries_holds_with_other_pending_entries_in_between(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    # Was: one XPENDING range query for the whole claimed batch; this
    # consumer's other pending entries between the batch's ids filled its
    # COUNT, and the entries left out counted as first deliveries.
    redis_server.cli("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")

    def add(event_type: str, n: int) -> str:
        fields = encode(Event(event_type, {"n": n}), b"elsewhere", None, 10_000)
        return redis_server.cli("XADD", "s", "*", *[item.decode() for pair in fields.items() for item in pair]).strip()

    def read(consumer: str, count: int) -> None:
        redis_server.cli("XREADGROUP", "GROUP", "g", consumer, "COUNT", str(count), "STREAMS", "s", ">")

    first = add("job", 1)
    for n in range(10):
        add("filler", n)
    second = add("job", 2)
    read("dead", 1)  # the first job, to a consumer that died
    read("c1", 10)  # the fillers, to the bridge's consumer: pending for it, between the two jobs
    read("dead", 1)  # the second job
    for _ in range(5):  # both jobs: six deliveries already
        redis_server.cli("XREADGROUP", "GROUP", "g", "dead", "STREAMS", "s", "0")
    time.sleep(0.3)  # idle longer than claim_idle

    bus = buses(failure_threshold=1000)
    jobs: list[Event] = []
    bus.subscribe("job", jobs.append)
    bus.subscribe("filler", lambda e: 1 / 0)  # fillers fail, so they stay pending for c1
    bridge = RedisBridge(
        bus, redis_server.url, stream="s", mode="group", group="g", consumer="c1", claim_idle=0.2, max_deliveries=5
    )
    assert bridge.start()
    wait_for(lambda: first in redis_server.cli("XRANGE", "s:dead", "-", "+"), "the first job dead-lettered")
    wait_for(lambda: second in redis_server.cli("XRANGE", "s:dead", "-", "+"), "the second job dead-lettered")
    assert jobs == []


def test_a_group_made_again_after_redis_lost_its_data_skips_nothing(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    # Was: the producer's XADD made the stream again, then the reader made
    # the group again at "$", after that entry.
    producer_bus, consumer_bus = buses(), buses()
    got: list[int] = []
    consumer_bus.subscribe("job", lambda e: got.append(e.data["n"]))
    producer = RedisBridge(producer_bus, redis_server.url, stream="s", mode="group", group="g", direction="out")
    consumer = RedisBridge(consumer_bus, redis_server.url, stream="s", mode="group", group="g", direction="in")
    assert producer.start()
    assert consumer.start()
    producer_bus.publish_sync(Event("job", {"n": 0}))
    wait_for(lambda: got == [0], "the first job")
    redis_server.restart()  # no persistence: the stream and the group are gone
    for n in range(1, 11):
        producer_bus.publish_sync(Event("job", {"n": n}))
        time.sleep(0.02)
    wait_for(lambda: sorted(got) == list(range(11)), "every job after the data loss", timeout=30)


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


def test_a_hung_redis_is_taken_for_unreachable(redis_server: RedisServer, buses: Callable[..., EventBus]) -> None:
    # Was: with no socket timeout, a stopped Redis looked slow forever, and
    # every publish past a full buffer waited put_timeout.
    bus = buses()
    bridge = RedisBridge(
        bus, redis_server.url, stream="s", direction="out", buffer_size=2, client_options={"socket_timeout": 2}
    )
    assert bridge.start()
    pid = redis_server._resources.process.pid  # type: ignore[union-attr]
    os.kill(pid, signal.SIGSTOP)
    try:
        for n in range(4):
            bus.publish_sync(Event("job", {"n": n}))
        wait_for(lambda: bridge.stats()["connection_errors"] >= 1, "the write timing out")
        started = time.monotonic()
        for n in range(5):
            bus.publish_sync(Event("job", {"n": n}))
        assert time.monotonic() - started < 2  # dropped at once, not after put_timeout (5 s) each
    finally:
        os.kill(pid, signal.SIGCONT)
    assert bridge.stats()["dropped"] >= 5


def test_every_drop_is_logged_even_inside_the_rate_limit(
    redis_server: RedisServer, buses: Callable[..., EventBus], caplog: pytest.LogCaptureFixture
) -> None:
    bus = buses()
    bridge = RedisBridge(bus, redis_server.url, stream="s", direction="out", buffer_size=1, batch_size=1)
    assert bridge.start()
    redis_server.kill()
    bus.publish_sync(Event("job", {"n": 0}))  # the writer holds it, failing
    wait_for(lambda: bridge.stats()["connection_errors"] >= 1, "the outage")
    with caplog.at_level(logging.WARNING, "blinker_events.redis"):
        for n in range(4):
            bus.publish_sync(Event("job", {"n": n}))  # one buffered; of three drops one logged, two held back
        assert bridge.stop(timeout=0.5) == 2
    assert bridge.stats()["dropped"] == 5
    assert "dropped 1 event(s)" in caplog.text
    assert "2 more event(s) were dropped" in caplog.text


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"url": 123}, TypeError, "url must be a str"),
        ({"event_types": ["ok", 3.5]}, TypeError, "event_types"),
        ({"claim_idle": 0.001, "mode": "group"}, ValueError, "claim_idle"),
        ({"stream": "s", "dead_letter_stream": "s"}, ValueError, "dead_letter_stream"),
        ({"client_options": {"socket_timeout": 0.5}}, ValueError, "socket_timeout"),
    ],
)
def test_more_bad_arguments_are_refused_naming_them(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        RedisBridge(EventBus(), **options)


@pytest.mark.asyncio
async def test_stop_async_from_another_loop_waits_for_the_close(redis_server: RedisServer) -> None:
    bus = EventBus()
    bridge = RedisBridge(bus, redis_server.url, stream="s", direction="out")
    assert await asyncio.to_thread(bridge.start)  # on the bus's loop thread
    await bus.publish(Event("job"))
    assert await bridge.stop_async() == 0
    assert redis_server.cli("XLEN", "s").strip() == "1"
    bus.shutdown(timeout=10)


def test_a_disabled_bus_leaves_group_work_to_the_other_nodes(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    disabled_bus, worker_bus, producer_bus = buses(), buses(), buses()
    declined: list[int] = []
    done: list[int] = []
    disabled_bus.subscribe("job", lambda e: declined.append(e.data["n"]))
    worker_bus.subscribe("job", lambda e: done.append(e.data["n"]))
    disabled_bus.disable()
    group = {"stream": "s", "mode": "group", "group": "g"}
    disabled = RedisBridge(disabled_bus, redis_server.url, direction="in", **group)
    producer = RedisBridge(producer_bus, redis_server.url, direction="out", **group)
    assert disabled.start()
    assert producer.start()
    for n in range(20):
        producer_bus.publish_sync(Event("job", {"n": n}))
    time.sleep(0.5)  # the disabled node reads nothing meanwhile
    worker = RedisBridge(worker_bus, redis_server.url, direction="in", **group)
    assert worker.start()
    wait_for(lambda: len(done) == 20, "the worker taking every job")
    assert sorted(done) == list(range(20))
    assert declined == []
    assert disabled.stats()["failed"] == 0


# -- found by a second review ---------------------------------------------------


def test_broadcast_keeps_stream_order_with_sync_and_async_receivers(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    # Was: events with only async receivers were published at once while the
    # ones with sync receivers waited in the worker queue, and overtook them.
    bus, sender_bus = buses(timeout=10), buses()
    order: list[int] = []

    def slow(event: Event) -> None:
        time.sleep(0.005)
        order.append(event.data["n"])

    async def quick(event: Event) -> None:
        order.append(event.data["n"])

    bus.subscribe("with.sync", slow)
    bus.subscribe("async.only", quick)
    reader = RedisBridge(bus, redis_server.url, stream="s", direction="in")
    sender = RedisBridge(sender_bus, redis_server.url, stream="s", direction="out")
    assert reader.start()
    assert sender.start()
    for n in range(30):
        sender_bus.publish_sync(Event("with.sync" if n % 2 == 0 else "async.only", {"n": n}))
    wait_for(lambda: len(order) == 30, "every event")
    assert order == list(range(30))


def test_stop_racing_a_bus_shutdown_counts_what_it_could_not_write(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    # Was: the shutdown stopped the loop under the other thread's close, which
    # never counted the batch in hand: events vanished without a word.
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
    bus.shutdown(timeout=2)
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


def test_a_second_bridge_on_the_same_stream_of_one_bus_is_refused(
    redis_server: RedisServer, buses: Callable[..., EventBus]
) -> None:
    bus = buses()
    first = RedisBridge(bus, redis_server.url, stream="s")
    second = RedisBridge(bus, redis_server.url, stream="s")
    assert first.start()
    with pytest.raises(RuntimeError, match="already has a running bridge on 's'"):
        second.start()
    assert not second.running
    other_stream = RedisBridge(bus, redis_server.url, stream="t")
    assert other_stream.start()


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
