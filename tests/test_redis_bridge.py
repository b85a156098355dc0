"""``blinker_events.redis.RedisBridge`` within one process, against a real
redis-server started per test: the wire format, what is refused, both modes,
dead letters, redelivery, outages and the async API. Across processes:
tests/test_redis_processes.py."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from blinker_events import Event, EventBus, SystemEventType, event_type_name
from blinker_events.redis import RedisBridge, WireError
from blinker_events.redis._wire import decode, encode
from blinker_events.redis.testing import RedisServer
from tests.conftest import Demo, need_redis_server, pending, wait_for

UNKNOWN_TYPE = {"kind": "enum", "enum": "x:Nope", "member": "A"}
WAIT = 15.0  # generous: a bound that proves something happened, not a timing


@pytest.fixture
def make_bridge(redis_server: RedisServer) -> Iterator[Callable[..., RedisBridge]]:
    """Bridges on fresh buses (or the one given), all stopped afterwards."""
    made: list[tuple[RedisBridge, EventBus]] = []

    def make(bus: EventBus | None = None, **options: Any) -> RedisBridge:
        bus = bus or EventBus()
        options.setdefault("stream", "test")
        bridge = RedisBridge(bus, redis_server.url, **options)
        made.append((bridge, bus))
        return bridge

    yield make
    for bridge, bus in made:
        assert bridge.stop(timeout=10) == 0
        bus.shutdown(timeout=10)


def xlen(redis_server: RedisServer, stream: str = "test") -> int:
    return int(redis_server.cli("XLEN", stream))


# -- the wire format ---------------------------------------------------------


def test_entry_round_trip_keeps_id_parent_source_and_marks_the_origin() -> None:
    event = Event(Demo.PING, {"n": 1, "tags": ["a"]}, source="svc")
    fields = encode(event, b"node-1", None, 10_000)
    assert fields[b"v"] == b"1"
    assert fields[b"type"] == b"Demo.PING"
    back = decode(fields, 10_000)
    assert (back.event_type, dict(back.data), back.source) == (Demo.PING, {"n": 1, "tags": ["a"]}, "svc")
    assert (back.event_id, back.timestamp, back.parent_id) == (event.event_id, event.timestamp, None)
    assert back.origin == "node-1"
    assert back.is_remote
    assert event.origin is None
    assert not event.is_remote


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({b"v": b"2"}, "version"),
        ({b"origin": b""}, "missing_field"),
        ({b"event": b"{not json"}, "malformed_json"),
        ({b"event": b"\xff\xfe"}, "malformed_json"),
        ({b"event": json.dumps({"version": 1, "event_type": UNKNOWN_TYPE}).encode()}, "unknown_type"),
        ({b"event": b"[1, 2]"}, "invalid_event"),
        ({b"event": b'{"version": 1, "event_type": {"kind": "str", "name": "x"}, "event_id": "bad"}'}, "invalid_event"),
        ({b"event": b"x" * 2000}, "too_large"),
    ],
)
def test_bad_entries_are_refused_with_a_reason(change: dict[bytes, bytes], reason: str) -> None:
    fields = encode(Event("x", {"n": 1}), b"node", None, 10_000)
    fields.update(change)
    with pytest.raises(WireError) as caught:
        decode(fields, 1000)
    assert caught.value.reason == reason


def test_an_entry_without_its_event_field_is_refused() -> None:
    with pytest.raises(WireError, match="missing_field"):
        decode({b"v": b"1", b"origin": b"n"}, 1000)


# -- arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"mode": "fanout"}, ValueError, "mode"),
        ({"direction": "sideways"}, ValueError, "direction"),
        ({"group": "g"}, ValueError, "group"),
        ({"stream": ""}, ValueError, "stream"),
        ({"stream": 5}, TypeError, "stream"),
        ({"event_types": []}, ValueError, "event_types"),
        ({"event_types": "order.created"}, TypeError, "event_types"),
        ({"event_types": [3]}, TypeError, "event_type"),
        ({"maxlen": 0}, ValueError, "maxlen"),
        ({"buffer_size": -1}, ValueError, "buffer_size"),
        ({"claim_idle": None, "mode": "group"}, TypeError, "claim_idle"),
        ({"encoder": 1}, TypeError, "encoder"),
        ({"client_options": []}, TypeError, "client_options"),
    ],
)
def test_bad_arguments_are_refused_naming_them(options: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        RedisBridge(EventBus(), **options)


def test_a_url_that_is_not_redis_is_refused() -> None:
    with pytest.raises(ValueError, match="url"):
        RedisBridge(EventBus(), "http://127.0.0.1:6379")
    with pytest.raises(TypeError, match="bus"):
        RedisBridge(object())  # type: ignore[arg-type]


# -- broadcast ---------------------------------------------------------------


def test_broadcast_crosses_both_ways_without_echo(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer
) -> None:
    left, right = make_bridge(), make_bridge()
    seen: dict[str, list[tuple[int, str | None]]] = {"left": [], "right": []}
    left.bus.subscribe(Demo.PING, lambda e: seen["left"].append((e.data["n"], e.origin)))
    right.bus.subscribe(Demo.PING, lambda e: seen["right"].append((e.data["n"], e.origin)))
    assert left.start()
    assert right.start()
    for n in range(3):
        left.bus.publish_sync(Event(Demo.PING, {"n": n}))
    right.bus.publish_sync(Event(Demo.PING, {"n": 10}))
    wait_for(lambda: len(seen["right"]) == 4 and len(seen["left"]) == 4, "both sides")
    # Each side's own event runs at once, the other's when it arrives.
    assert sorted(seen["left"]) == [(0, None), (1, None), (2, None), (10, right.node_id)]
    assert sorted(seen["right"]) == [(0, left.node_id), (1, left.node_id), (2, left.node_id), (10, None)]
    time.sleep(0.2)  # room for an echo, were there one
    assert xlen(redis_server) == 4
    assert left.stats()["skipped_own"] == 3
    assert right.stats()["skipped_own"] == 1


def test_a_receiver_publishing_on_a_remote_event_forwards_only_its_own_event(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer
) -> None:
    left, right = make_bridge(), make_bridge()
    answers: list[str | None] = []
    right.bus.subscribe(Demo.PING, lambda e: right.bus.publish_sync(Event(Demo.PONG, {"to": e.event_id})))
    left.bus.subscribe(Demo.PONG, lambda e: answers.append(e.origin))
    assert left.start()
    assert right.start()
    ping = Event(Demo.PING)
    left.bus.publish_sync(ping)
    wait_for(lambda: answers == [right.node_id], "the answer")
    pong = right.bus.get_history(Demo.PONG)[0]
    assert pong.parent_id == ping.event_id  # the causal link survives the hop
    time.sleep(0.2)
    assert xlen(redis_server) == 2


def test_data_json_cannot_carry_is_refused_at_publish_and_nothing_runs(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer
) -> None:
    bridge = make_bridge()
    calls: list[Event] = []
    bridge.bus.subscribe(Demo.PING, calls.append)
    assert bridge.start()
    with pytest.raises(ValueError, match=r"data\.when: module is not JSON-safe \(give the bridge an encoder="):
        bridge.bus.publish_sync(Event(Demo.PING, {"when": time}))  # a module: not JSON
    with pytest.raises(ValueError, match="cannot cross to Redis"):
        bridge.bus.publish_nowait(Event(Demo.PING, {"when": object()}))
    with pytest.raises(ValueError, match="cannot cross to Redis"):
        asyncio.run(bridge.bus.publish(Event(Demo.PING, {"when": object()})))
    assert calls == []
    assert bridge.bus.get_history() == []
    assert bridge.stop() == 0
    assert xlen(redis_server) == 0


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"note": "ok\ud800"}, "data.note: a str with a lone surrogate at position 2, which UTF-8 cannot carry"),
        ({"ok": 1, "\udfff": 1}, "data (a key): a str with a lone surrogate at position 0, which UTF-8 cannot carry"),
        (
            {"lines": ["a", ["\ud800"]]},
            "data.lines[1][0]: a str with a lone surrogate at position 0, which UTF-8 cannot carry",
        ),
        (
            {"total": 10**5000},
            "data.total: an int of more than 4300 digits has no JSON form",
        ),
    ],
)
def test_text_utf8_json_cannot_carry_is_refused_at_publish_naming_the_field(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer, data: dict[str, Any], why: str
) -> None:
    bridge = make_bridge()
    calls: list[Event] = []
    bridge.bus.subscribe(Demo.PING, calls.append)
    assert bridge.start()
    with pytest.raises(ValueError) as caught:
        bridge.bus.publish_sync(Event(Demo.PING, data))
    assert str(caught.value) == f"event {event_type_name(Demo.PING)} cannot cross to Redis: {why}"
    assert calls == []
    assert bridge.stop() == 0
    assert xlen(redis_server) == 0


def test_an_encoder_converts_what_json_cannot_carry(make_bridge: Callable[..., RedisBridge]) -> None:
    sender = make_bridge(encoder=lambda value: sorted(value) if isinstance(value, set) else str(value))
    receiver = make_bridge()
    got: list[dict[str, Any]] = []
    receiver.bus.subscribe(Demo.PING, lambda e: got.append(dict(e.data)))
    assert sender.start()
    assert receiver.start()
    sender.bus.publish_sync(Event(Demo.PING, {"tags": {"b", "a"}}))
    wait_for(lambda: got == [{"tags": ["a", "b"]}], "the converted event")


def test_payload_over_the_limit_is_refused_at_publish(make_bridge: Callable[..., RedisBridge]) -> None:
    bridge = make_bridge(max_payload=500)
    assert bridge.start()
    with pytest.raises(ValueError, match="max_payload of 500"):
        bridge.bus.publish_sync(Event(Demo.PING, {"blob": "x" * 600}))


def test_only_the_chosen_types_cross(make_bridge: Callable[..., RedisBridge], redis_server: RedisServer) -> None:
    sender = make_bridge(event_types=[Demo.PING, "order.created"])
    receiver = make_bridge()
    got: list[Any] = []
    receiver.bus.subscribe(None, lambda e: got.append(e.event_type))
    assert sender.start()
    assert receiver.start()
    sender.bus.publish_sync(Event(Demo.PONG, {"x": object()}))  # not carried, so not checked either
    sender.bus.publish_sync(Event("order.created"))
    sender.bus.publish_sync(Event(Demo.PING))
    wait_for(lambda: len(got) == 2, "two events")
    assert got == ["order.created", Demo.PING]
    assert xlen(redis_server) == 2


def test_every_type_skips_system_events_and_relayed_signals(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer
) -> None:
    from blinker import Signal

    bridge = make_bridge()
    relayed = Signal()
    bridge.bus.bridge(relayed, "relayed.thing")
    assert bridge.start()
    bridge.bus.publish_sync(Event(SystemEventType.SYSTEM_STARTUP))
    relayed.send("sender", obj=object())  # a Python object: must not be refused, just not carried
    bridge.bus.publish_sync(Event(Demo.PING))
    assert bridge.stop() == 0
    assert xlen(redis_server) == 1
    assert len(bridge.bus.get_history("relayed.thing")) == 1


def test_the_reader_ignores_types_it_does_not_carry(make_bridge: Callable[..., RedisBridge]) -> None:
    sender = make_bridge()
    receiver = make_bridge(event_types=[Demo.PING])
    got: list[Any] = []
    receiver.bus.subscribe(None, lambda e: got.append(e.event_type))
    assert sender.start()
    assert receiver.start()
    sender.bus.publish_sync(Event(Demo.PONG))
    sender.bus.publish_sync(Event(Demo.PING))
    wait_for(lambda: got == [Demo.PING], "the carried type")
    wait_for(lambda: receiver.stats()["ignored"] == 1, "the ignored count")


def test_a_restarted_broadcast_bridge_resumes_from_the_last_id(make_bridge: Callable[..., RedisBridge]) -> None:
    sender, receiver = make_bridge(), make_bridge()
    got: list[int] = []
    receiver.bus.subscribe(Demo.PING, lambda e: got.append(e.data["n"]))
    assert sender.start()
    assert receiver.start()
    sender.bus.publish_sync(Event(Demo.PING, {"n": 1}))
    wait_for(lambda: got == [1], "the first event")
    assert receiver.stop() == 0
    sender.bus.publish_sync(Event(Demo.PING, {"n": 2}))
    sender.bus.publish_sync(Event(Demo.PING, {"n": 3}))
    wait_for(lambda: sender.stats()["published"] == 3, "the writes")
    assert receiver.start()
    wait_for(lambda: got == [1, 2, 3], "the missed events")


@pytest.mark.parametrize("mode", ["broadcast", "group"])
def test_a_restarted_reader_says_it_is_connected_only_once_redis_answers(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer, mode: str
) -> None:
    # Was: a broadcast reader started again after a stop knew its place in
    # the stream already, and start() returned True at once with Redis down.
    bridge = make_bridge(direction="in", mode=mode, **({"group": "g"} if mode == "group" else {}))
    assert bridge.start()
    assert bridge.stop() == 0
    redis_server.shutdown()
    assert bridge.start(timeout=0.5) is False
    redis_server.start()
    wait_for(lambda: bridge.stats()["reconnects"] >= 1, "the reconnection")
    assert bridge.stop() == 0


def test_a_failing_receiver_is_isolated_and_counted_in_broadcast(make_bridge: Callable[..., RedisBridge]) -> None:
    sender, receiver = make_bridge(), make_bridge()
    good: list[int] = []

    def bad(event: Event) -> None:
        raise RuntimeError("boom")

    receiver.bus.subscribe(Demo.PING, bad)
    receiver.bus.subscribe(Demo.PING, lambda e: good.append(e.data["n"]))
    assert sender.start()
    assert receiver.start()
    sender.bus.publish_sync(Event(Demo.PING, {"n": 1}))
    wait_for(lambda: good == [1], "the good receiver")
    wait_for(lambda: receiver.stats()["failed"] == 1, "the failure count")
    report = receiver.bus.get_delivery_reports(Demo.PING)[0]
    assert [type(exc) for _, exc in report.failed] == [RuntimeError]


# -- group mode --------------------------------------------------------------


def test_group_mode_hands_the_event_to_the_group(make_bridge: Callable[..., RedisBridge]) -> None:
    bridge = make_bridge(mode="group", group="g")
    got: list[tuple[int, str | None, str]] = []
    bridge.bus.subscribe(Demo.PING, lambda e: got.append((e.data["n"], e.origin, threading.current_thread().name)))
    assert bridge.start()
    report = bridge.bus.publish_sync(Event(Demo.PING, {"n": 7}))
    assert report.handed_off
    assert report.succeeded == []
    wait_for(lambda: len(got) == 1, "delivery through the group")
    assert got[0][:2] == (7, bridge.node_id)
    assert bridge.bus.get_delivery_reports(Demo.PING)[0].handed_off  # the publish is in the history too


def test_group_consumers_share_the_work(make_bridge: Callable[..., RedisBridge], redis_server: RedisServer) -> None:
    producer = make_bridge(mode="group", group="g", direction="out")
    one, two = make_bridge(mode="group", group="g", batch_size=10), make_bridge(mode="group", group="g", batch_size=10)
    got: dict[str, list[int]] = {"one": [], "two": []}
    one.bus.subscribe(Demo.PING, lambda e: got["one"].append(e.data["n"]))
    two.bus.subscribe(Demo.PING, lambda e: got["two"].append(e.data["n"]))
    assert one.start()
    assert two.start()
    assert producer.start()
    for n in range(300):
        producer.bus.publish_sync(Event(Demo.PING, {"n": n}))
    wait_for(lambda: len(got["one"]) + len(got["two"]) == 300, "all events")
    assert sorted(got["one"] + got["two"]) == list(range(300))
    assert got["one"]
    assert got["two"]
    wait_for(lambda: redis_server.cli("XPENDING", "test", "g").split()[0] == "0", "no pending entries")


def test_a_failed_delivery_is_retried_then_dead_lettered(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer
) -> None:
    bus = EventBus(failure_threshold=100)
    bridge = make_bridge(bus, mode="group", group="g", claim_idle=0.2, max_deliveries=3)
    attempts: list[str] = []

    def flaky(event: Event) -> None:
        attempts.append(event.event_id)
        raise RuntimeError("down")

    bus.subscribe(Demo.PING, flaky)
    assert bridge.start()
    bus.publish_sync(Event(Demo.PING))
    wait_for(lambda: bridge.stats()["dead_lettered"] == 1, "the dead letter")
    assert len(attempts) == 3
    assert len(set(attempts)) == 1
    dead = redis_server.cli("XRANGE", "test:dead", "-", "+")
    assert "max_deliveries" in dead
    assert "delivered 3 times" in dead
    wait_for(lambda: redis_server.cli("XPENDING", "test", "g").split()[0] == "0", "the entry acknowledged")


def test_a_redelivered_event_is_not_handled_twice(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer
) -> None:
    bridge = make_bridge(mode="group", group="g")
    got: list[str] = []
    bridge.bus.subscribe(Demo.PING, lambda e: got.append(e.event_id))
    assert bridge.start()
    event = Event(Demo.PING)
    fields = encode(event, b"elsewhere", None, 10_000)
    args = [item.decode() for pair in fields.items() for item in pair]
    redis_server.cli("XADD", "test", "*", *args)
    redis_server.cli("XADD", "test", "*", *args)  # a producer that retried after a lost reply
    wait_for(lambda: bridge.stats()["duplicates"] == 1, "the duplicate")
    assert got == [event.event_id]
    wait_for(lambda: redis_server.cli("XPENDING", "test", "g").split()[0] == "0", "both acknowledged")


def test_malformed_entries_are_dead_lettered_while_good_ones_flow(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer
) -> None:
    sender = make_bridge(mode="group", group="g", direction="out")
    bridge = make_bridge(mode="group", group="g", max_payload=2000)
    got: list[int] = []
    bridge.bus.subscribe(Demo.PING, lambda e: got.append(e.data["n"]))
    assert bridge.start()
    assert sender.start()
    sender.bus.publish_sync(Event(Demo.PING, {"n": 1}))
    redis_server.cli("XADD", "test", "*", "v", "1", "origin", "cli", "event", "{not json")
    redis_server.cli("XADD", "test", "*", "v", "9", "origin", "cli", "event", "{}")
    redis_server.cli("XADD", "test", "*", "hello", "world")
    unknown = {"version": 1, "event_type": {"kind": "enum", "enum": "x:Gone", "member": "A"}}
    redis_server.cli("XADD", "test", "*", "v", "1", "origin", "cli", "event", json.dumps(unknown))
    redis_server.cli("XADD", "test", "*", "v", "1", "origin", "cli", "event", "x" * 3000)
    sender.bus.publish_sync(Event(Demo.PING, {"n": 2}))
    wait_for(lambda: got == [1, 2], "the good events")
    wait_for(lambda: bridge.stats()["dead_lettered"] == 5, "five dead letters")
    assert bridge.stats()["malformed"] == 5
    lines = redis_server.cli("XRANGE", "test:dead", "-", "+").splitlines()
    reasons = [lines[i + 1] for i, line in enumerate(lines) if line == "dead.reason"]
    assert reasons == ["malformed_json", "version", "version", "unknown_type", "too_large"]
    wait_for(lambda: redis_server.cli("XPENDING", "test", "g").split()[0] == "0", "all acknowledged")


def test_malformed_entries_in_broadcast_are_dead_lettered(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    bridge = make_bridge()
    assert bridge.start()
    with caplog.at_level(logging.ERROR, "blinker_events.redis"):
        redis_server.cli("XADD", "test", "*", "v", "1", "origin", "cli", "event", "[")
        wait_for(lambda: bridge.stats()["dead_lettered"] == 1, "the dead letter")
    assert "malformed_json" in caplog.text
    assert xlen(redis_server, "test:dead") == 1


# -- outages -------------------------------------------------------------------


def test_events_published_while_redis_is_down_are_written_after(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer
) -> None:
    sender = make_bridge(direction="out")
    assert sender.start()
    redis_server.shutdown()
    for n in range(50):
        sender.bus.publish_sync(Event(Demo.PING, {"n": n}))
    wait_for(lambda: sender.stats()["connection_errors"] >= 1, "the outage noticed")
    redis_server.start()
    wait_for(lambda: sender.stats()["published"] == 50, "the flush", timeout=30)
    assert sender.stats()["dropped"] == 0
    assert sender.stats()["reconnects"] >= 1
    assert xlen(redis_server) == 50


def test_past_the_buffer_events_are_dropped_counted_and_logged(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    sender = make_bridge(direction="out", buffer_size=5, batch_size=1)
    assert sender.start()
    redis_server.shutdown()
    sender.bus.publish_sync(Event(Demo.PING, {"n": -1}))
    wait_for(lambda: sender.stats()["connection_errors"] >= 1, "the outage noticed")
    with caplog.at_level(logging.WARNING, "blinker_events.redis"):
        for n in range(8):
            sender.bus.publish_sync(Event(Demo.PING, {"n": n}))
    assert sender.stats()["dropped"] == 3
    assert "dropped 1 event" in caplog.text
    redis_server.start()
    wait_for(lambda: sender.stats()["published"] == 6, "the flush", timeout=30)
    assert xlen(redis_server) == 6


def test_stop_flushes_and_reports_what_it_could_not_write(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer
) -> None:
    sender = make_bridge(direction="out")
    assert sender.start()
    for n in range(1000):
        sender.bus.publish_sync(Event(Demo.PING, {"n": n}))
    assert sender.stop() == 0
    assert xlen(redis_server) == 1000
    assert sender.start()
    redis_server.shutdown()
    for n in range(3):
        sender.bus.publish_sync(Event(Demo.PING, {"n": n}))
    assert sender.stop(timeout=0.3) == 3
    assert sender.stats()["dropped"] == 3


def test_bus_shutdown_stops_its_bridges(make_bridge: Callable[..., RedisBridge], redis_server: RedisServer) -> None:
    sender = make_bridge(direction="out")
    assert sender.start()
    for n in range(100):
        sender.bus.publish_sync(Event(Demo.PING, {"n": n}))
    assert sender.bus.shutdown(timeout=10) == 0
    assert not sender.running
    assert xlen(redis_server) == 100
    sender.bus.publish_sync(Event(Demo.PING, {"x": object()}))  # no longer an outlet: nothing refuses it


def test_start_twice_and_start_on_the_bus_loop_are_refused(make_bridge: Callable[..., RedisBridge]) -> None:
    bridge = make_bridge()
    assert bridge.start()
    with pytest.raises(RuntimeError, match="already started"):
        bridge.start()
    other = make_bridge()

    async def on_loop() -> None:
        other.start()

    with pytest.raises(RuntimeError, match="start_async"):
        other.bus._loop_thread.submit(on_loop()).result()


def test_start_reports_false_when_redis_does_not_answer_and_keeps_trying(redis_server: RedisServer) -> None:
    url = redis_server.url
    redis_server.shutdown()
    bus = EventBus()
    bridge = RedisBridge(bus, url, stream="test", direction="out")
    try:
        assert bridge.start(timeout=0.3) is False
        bus.publish_sync(Event(Demo.PING))
        redis_server.start()
        wait_for(lambda: bridge.stats()["published"] == 1, "the late write", timeout=30)
    finally:
        assert bridge.stop() == 0
        bus.shutdown(timeout=10)


def test_passwords_in_the_url_work(redis_server: RedisServer) -> None:
    redis_server.cli("CONFIG", "SET", "requirepass", "s3cret")
    bus = EventBus()
    got: list[int] = []
    bus.subscribe(Demo.PING, lambda e: got.append(e.data["n"]))
    url = f"redis://:s3cret@127.0.0.1:{redis_server.port}/0"
    bridge = RedisBridge(bus, url, stream="test", mode="group", group="g")
    try:
        assert bridge.start()
        bus.publish_sync(Event(Demo.PING, {"n": 5}))
        wait_for(lambda: got == [5], "the event")
    finally:
        bridge.stop()
        bus.shutdown(timeout=10)
        redis_server.cli("-a", "s3cret", "--no-auth-warning", "CONFIG", "SET", "requirepass", "")


# -- the async API -------------------------------------------------------------


@pytest.mark.asyncio
async def test_start_async_runs_on_the_callers_loop(redis_server: RedisServer) -> None:
    loop = asyncio.get_running_loop()
    sender_bus, receiver_bus = EventBus(), EventBus()
    got: list[tuple[int, bool]] = []

    async def receiver(event: Event) -> None:
        got.append((event.data["n"], asyncio.get_running_loop() is loop))

    receiver_bus.subscribe(Demo.PING, receiver)
    async with (
        RedisBridge(sender_bus, redis_server.url, stream="test") as sender,
        RedisBridge(receiver_bus, redis_server.url, stream="test") as reader,
    ):
        assert reader.running
        await sender_bus.publish(Event(Demo.PING, {"n": 1}))
        for _ in range(int(WAIT / 0.01)):
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == [(1, True)]
    assert not sender.running
    sender_bus.shutdown(timeout=10)
    receiver_bus.shutdown(timeout=10)


def test_a_publisher_faster_than_redis_waits_for_room_instead_of_dropping(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer
) -> None:
    sender = make_bridge(direction="out", buffer_size=10, batch_size=5)
    assert sender.start()
    for n in range(500):
        sender.bus.publish_sync(Event(Demo.PING, {"n": n}))
    assert sender.stop() == 0
    assert sender.stats()["dropped"] == 0
    assert xlen(redis_server) == 500


def test_a_producer_makes_the_group_so_nothing_it_writes_is_missed(make_bridge: Callable[..., RedisBridge]) -> None:
    producer = make_bridge(mode="group", group="g", direction="out")
    assert producer.start()
    producer.bus.publish_sync(Event(Demo.PING, {"n": 1}))  # before any consumer exists
    consumer = make_bridge(mode="group", group="g", direction="in")
    got: list[int] = []
    consumer.bus.subscribe(Demo.PING, lambda e: got.append(e.data["n"]))
    assert consumer.start()
    wait_for(lambda: got == [1], "the early event")


def test_bus_shutdown_also_stops_a_reading_bridge(make_bridge: Callable[..., RedisBridge]) -> None:
    reader = make_bridge(direction="in")
    assert reader.start()
    reader.bus.shutdown(timeout=10)
    assert not reader.running
    reader.bus.publish_sync(Event(Demo.PING, {"x": object()}))  # a reader never checks outgoing events


def test_a_graceful_stop_finishes_the_batch_in_hand(make_bridge: Callable[..., RedisBridge]) -> None:
    # Regression: stop() used to cut the reader off while the worker still
    # ran the batch's receivers; the batch was never acknowledged nor
    # remembered, so a restart delivered it a second time.
    bus = EventBus(timeout=30)
    got: list[int] = []

    def slow(event: Event) -> None:
        got.append(event.data["n"])
        time.sleep(0.002)

    bus.subscribe(Demo.PING, slow)
    consumer = make_bridge(bus, mode="group", group="g", consumer="c1", direction="in", batch_size=50)
    producer = make_bridge(mode="group", group="g", direction="out")
    assert consumer.start()
    assert producer.start()
    for n in range(400):
        producer.bus.publish_sync(Event(Demo.PING, {"n": n}))
    assert producer.stop() == 0
    wait_for(lambda: len(got) >= 60, "the first batches")
    assert consumer.stop() == 0
    stopped_at = len(got)
    time.sleep(0.2)
    assert len(got) == stopped_at  # nothing runs after stop() returned
    assert consumer.start()
    wait_for(lambda: len(got) >= 400, "the rest")
    time.sleep(0.2)
    assert sorted(got) == list(range(400))
    assert consumer.stats()["delivered"] == 400


@pytest.mark.skipif(shutil.which("openssl") is None and not os.environ.get("CI"), reason="openssl is not installed")
def test_rediss_urls_use_tls() -> None:
    need_redis_server()
    with RedisServer(tls=True) as redis_server:
        bus = EventBus()
        got: list[int] = []
        bus.subscribe(Demo.PING, lambda e: got.append(e.data["n"]))
        bridge = RedisBridge(
            bus,
            redis_server.tls_url,
            stream="test",
            mode="group",
            group="g",
            client_options={"ssl_ca_certs": str(redis_server.ca_file)},
        )
        try:
            assert bridge.start()
            bus.publish_sync(Event(Demo.PING, {"n": 3}))
            wait_for(lambda: got == [3], "the event over TLS")
        finally:
            assert bridge.stop() == 0
            bus.shutdown(timeout=10)
        assert redis_server.cli("XLEN", "test").strip() == "1"


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


def _write_at_once(redis_server: RedisServer, events: list[Event], stream: str = "test") -> list[str]:
    """XADD the events' entries in one transaction, so a reader sees all of
    them or none; returns their entry ids."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    pipe = client.pipeline(transaction=True)
    for event in events:
        pipe.xadd(stream, encode(event, b"elsewhere", None, 10_000))  # type: ignore[arg-type]
    ids = [entry_id.decode() for entry_id in pipe.execute()]
    client.close()
    return ids


def _pending_ids(redis_server: RedisServer, stream: str = "test", group: str = "g") -> list[str]:
    rows = redis_server.cli("XPENDING", stream, group, "-", "+", "100").split()
    return [word for word in rows if "-" in word and word.split("-")[0].isdigit()]


def test_a_group_reader_behind_reads_the_next_batch_while_the_worker_runs_this_one(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer, gate: threading.Event
) -> None:
    # While the worker holds the second batch, the third is already read
    # (pending, not run) and the first, which ran, is acknowledged with that
    # read; nothing further is read, and nothing unhandled is acknowledged.
    bus = EventBus(timeout=30)
    got: list[int] = []

    def receiver(event: Event) -> None:
        if event.data["n"] == 2:
            gate.wait(WAIT)
        got.append(event.data["n"])

    bus.subscribe(Demo.PING, receiver)
    bridge = make_bridge(bus, mode="group", group="g", direction="in", batch_size=2)
    assert bridge.start()
    ids = _write_at_once(redis_server, [Event(Demo.PING, {"n": n}) for n in range(8)])
    wait_for(lambda: len(_pending_ids(redis_server)) == 4, "the batch read ahead")
    assert _pending_ids(redis_server) == ids[2:6]
    assert got == [0, 1]
    gate.set()
    wait_for(lambda: len(got) == 8 and pending(redis_server, "test") == 0, "the rest, acknowledged")
    assert got == list(range(8))
    assert (bridge.stats()["delivered"], bridge.stats()["duplicates"]) == (8, 0)


def test_a_graceful_stop_delivers_the_batch_read_ahead_too(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer, gate: threading.Event
) -> None:
    # A batch read ahead is in hand: a stop delivers and acknowledges it
    # rather than leave it pending for claim_idle, and reads nothing it would
    # leave pending.
    bus = EventBus(timeout=30)
    got: list[int] = []

    def receiver(event: Event) -> None:
        if event.data["n"] == 2:  # the second batch: the first was timed, and fast
            gate.wait(WAIT)
        got.append(event.data["n"])

    bus.subscribe(Demo.PING, receiver)
    bridge = make_bridge(bus, mode="group", group="g", consumer="c1", direction="in", batch_size=2)
    assert bridge.start()
    _write_at_once(redis_server, [Event(Demo.PING, {"n": n}) for n in range(8)])
    wait_for(lambda: len(_pending_ids(redis_server)) == 4, "the batch read ahead")
    stopped: list[int] = []
    stopping = threading.Thread(target=lambda: stopped.append(bridge.stop(timeout=20)))
    stopping.start()
    time.sleep(0.2)  # the stop is waiting for the batches in hand (if it is slower, more get delivered)
    gate.set()
    stopping.join(WAIT)
    assert stopped == [0]
    assert got[:6] == [0, 1, 2, 3, 4, 5]
    assert got == list(range(len(got)))
    assert _pending_ids(redis_server) == []  # nothing read and left behind
    assert bridge.start()  # what was never read comes next
    wait_for(lambda: len(got) == 8, "the rest")
    assert got == list(range(8))
    assert (bridge.stats()["delivered"], bridge.stats()["duplicates"]) == (8, 0)


def test_a_group_reader_whose_batches_are_slow_reads_no_batch_ahead_for_others_to_claim(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer
) -> None:
    # Two healthy consumers whose batches take over a quarter of claim_idle
    # (20 deliveries of 40 ms, claim_idle 1 s): a batch read ahead would
    # wait pending behind the one in hand for about two batches' time and
    # be claimed and run by the other consumer too. None may run twice.
    ran: dict[int, list[str]] = {}
    lock = threading.Lock()
    bridges = []
    for name in ("one", "two"):
        bus = EventBus(timeout=30)

        def receiver(event: Event, name: str = name) -> None:
            with lock:
                ran.setdefault(event.data["n"], []).append(name)
            time.sleep(0.04)

        bus.subscribe(Demo.PING, receiver)
        bridges.append(
            make_bridge(bus, mode="group", group="g", consumer=name, direction="in", batch_size=20, claim_idle=1.0)
        )
    for bridge in bridges:
        assert bridge.start()
    _write_at_once(redis_server, [Event(Demo.PING, {"n": n}) for n in range(240)])
    wait_for(lambda: len(ran) == 240 and pending(redis_server, "test") == 0, "every event, acknowledged")
    time.sleep(1.5)  # past claim_idle: a claim would have happened by now
    assert sorted(ran) == list(range(240))
    assert {n: names for n, names in ran.items() if len(names) > 1} == {}
    assert [bridge.stats()["claimed"] for bridge in bridges] == [0, 0]


def test_a_batch_acknowledges_exactly_its_handled_entries_past_a_thousand_ids(
    make_bridge: Callable[..., RedisBridge], redis_server: RedisServer
) -> None:
    # The acknowledgement goes to Redis as one argument, XACK'd a thousand
    # ids at a time there: every handled entry of a 2,500-entry batch is
    # acknowledged, and the one whose receiver failed stays pending.
    bus = EventBus(timeout=30, failure_threshold=10_000)

    def receiver(event: Event) -> None:
        if event.data["n"] == 1700:
            raise RuntimeError("down")

    bus.subscribe(Demo.PING, receiver)
    bridge = make_bridge(bus, mode="group", group="g", direction="in", batch_size=2500)
    assert bridge.start()
    ids = _write_at_once(redis_server, [Event(Demo.PING, {"n": n}) for n in range(2500)])
    wait_for(lambda: bridge.stats()["delivered"] == 2499 and pending(redis_server, "test") == 1, "the batch settled")
    assert _pending_ids(redis_server) == [ids[1700]]
    assert bridge.stats()["failed"] == 1
