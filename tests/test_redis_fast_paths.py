"""The Redis bridge's fast paths and the paths they fall back to: batches
written with one script call (and with pipelined XADDs where scripts are
refused), and the envelope's JSON with msgspec and with the json module --
each writing what the other reads, and refusing the same entries."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("redis")

import redis

from blinker_events import Event, EventBus
from blinker_events.redis import RedisBridge, WireError, _delivery, _outbound, _wire
from blinker_events.redis._wire import decode, encode
from blinker_events.redis.testing import RedisServer
from tests.conftest import wait_for

FIELDS = {b"v", b"origin", b"type", b"event"}
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_server.url)
    yield conn
    conn.close()


@pytest.fixture
def writer(redis_server: RedisServer) -> Iterator[Callable[..., RedisBridge]]:
    made: list[RedisBridge] = []

    def make(url: str | None = None, **options: Any) -> RedisBridge:
        options.setdefault("stream", "s")
        bridge = RedisBridge(EventBus(), url or redis_server.url, direction="out", **options)
        assert bridge.start()
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        bridge.stop(timeout=10)
        bridge.bus.shutdown(timeout=10)


def publish(bridge: RedisBridge, numbers: range) -> None:
    for n in numbers:
        bridge.bus.publish_sync(Event("job", {"n": n}))


def written(client: redis.Redis, stream: str = "s") -> list[int]:
    """The numbers in the stream's events, in stream order, after checking
    each entry has exactly the envelope's fields."""
    numbers = []
    for _, fields in client.xrange(stream):
        assert set(fields) == FIELDS
        numbers.append(decode(fields, 1_000_000).data["n"])
    return numbers


# -- writes: the script, its chunks, and the pipeline where it is refused ------


@pytest.mark.parametrize("maxlen", [None, 100_000])
def test_batches_are_written_in_order_with_the_envelope_fields(
    writer: Callable[..., RedisBridge], client: redis.Redis, maxlen: int | None
) -> None:
    bridge = writer(maxlen=maxlen, batch_size=100)
    publish(bridge, range(1000))
    wait_for(lambda: bridge.stats()["published"] == 1000, "every event written")
    assert written(client) == list(range(1000))
    assert bridge.stats()["dropped"] == 0


def test_a_batch_over_the_chunk_size_takes_several_script_calls_in_order(
    writer: Callable[..., RedisBridge], client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_outbound, "SCRIPT_CHUNK_BYTES", 500)  # two or three events a call
    bridge = writer()
    publish(bridge, range(300))
    wait_for(lambda: bridge.stats()["published"] == 300, "every event written")
    assert written(client) == list(range(300))


def test_a_script_cache_flushed_meanwhile_is_loaded_again(
    writer: Callable[..., RedisBridge], client: redis.Redis
) -> None:
    bridge = writer()
    publish(bridge, range(10))
    wait_for(lambda: bridge.stats()["published"] == 10, "the first events written")
    client.script_flush()  # as a restarted Redis would have forgotten it
    publish(bridge, range(10, 20))
    wait_for(lambda: bridge.stats()["published"] == 20, "the later events written")
    assert written(client) == list(range(20))
    assert bridge.stats()["dropped"] == 0


def test_a_user_who_may_not_run_scripts_writes_with_pipelined_xadds(
    redis_server: RedisServer,
    writer: Callable[..., RedisBridge],
    client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis_server.cli("ACL", "SETUSER", "noscripts", "on", ">pw", "~*", "&*", "+@all", "-@scripting")
    url = f"redis://noscripts:pw@127.0.0.1:{redis_server.port}/0"
    with caplog.at_level(logging.INFO, "blinker_events.redis"):
        bridge = writer(url)
        publish(bridge, range(50))
        wait_for(lambda: bridge.stats()["published"] == 50, "every event written")
        publish(bridge, range(50, 60))  # and from then on, without trying the script again
        wait_for(lambda: bridge.stats()["published"] == 60, "the later events written")
    assert written(client) == list(range(60))
    assert bridge.stats()["dropped"] == 0
    assert sum("refused the script" in r.getMessage() for r in caplog.records) == 1


def test_entries_redis_refuses_are_counted_as_dropped_and_logged(
    writer: Callable[..., RedisBridge], client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    client.set("s", "not a stream")  # every XADD to it is refused (WRONGTYPE)
    with caplog.at_level(logging.ERROR, "blinker_events.redis"):
        bridge = writer()
        publish(bridge, range(3))
        wait_for(lambda: bridge.stats()["dropped"] == 3, "the refusals counted")
    assert bridge.stats()["published"] == 0
    logged = [r.getMessage() for r in caplog.records if "Redis refused" in r.getMessage()]
    assert sum(int(m.split("Redis refused ")[1].split()[0]) for m in logged) == 3  # in one batch or more
    client.delete("s")
    publish(bridge, range(3, 5))  # refused entries do not stop the writer
    wait_for(lambda: bridge.stats()["published"] == 2, "later events written")
    assert written(client) == [3, 4]


# -- the envelope: msgspec and the json module ----------------------------------

needs_msgspec = pytest.mark.skipif(_wire._fast_dumps is None, reason="msgspec is not installed")


@pytest.fixture(params=["msgspec", "json"])
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with msgspec (where installed) and with the json module alone."""
    if request.param == "json":
        monkeypatch.setattr(_wire, "_fast_dumps", None)
        monkeypatch.setattr(_wire, "_fast_loads", None)
    elif _wire._fast_dumps is None:
        pytest.skip("msgspec is not installed")
    return str(request.param)


DATA: list[dict[str, Any]] = [
    {"n": 1},
    {"big": 2**100, "neg": -(2**70), "f": 1e16, "tiny": 5e-324, "z": -0.0},
    {"text": 'é\u2028\x00"\\ \U0001f600', "nested": [[{"a": [None, True, False]}]]},
    {},
]


@pytest.mark.parametrize("data", DATA)
def test_what_one_codec_writes_the_other_reads_exactly(data: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    event = Event("job", data)
    fast = encode(event, b"node", None, 1_000_000)
    monkeypatch.setattr(_wire, "_fast_dumps", None)
    monkeypatch.setattr(_wire, "_fast_loads", None)
    plain = encode(event, b"node", None, 1_000_000)
    assert json.loads(fast[b"event"]) == json.loads(plain[b"event"])
    for fields in (fast, plain):
        back = decode(fields, 1_000_000)
        assert back.data == data
        assert back.event_id == event.event_id
        assert back.timestamp == event.timestamp
        assert [type(v) for v in back.data.values()] == [type(v) for v in data.values()]
    monkeypatch.undo()
    for fields in (fast, plain):
        assert decode(fields, 1_000_000).data == data


def test_data_msgspec_does_not_take_is_written_by_the_json_module(codec: str) -> None:
    class Name(str):
        pass

    fields = encode(Event("job", {"who": Name("x")}), b"node", None, 1_000_000)
    assert json.loads(fields[b"event"])["data"] == {"who": "x"}


def test_an_encoder_hook_s_output_is_written_as_the_json_module_writes_it(codec: str) -> None:
    # json writes {1: ...} with the key "1" and a tuple as a list; so must every path.
    fields = encode(Event("job", {"x": object()}), b"node", lambda value: {1: (2, 3)}, 1_000_000)
    assert json.loads(fields[b"event"])["data"] == {"x": {"1": [2, 3]}}


def test_a_lone_surrogate_is_refused_at_publish_by_either_codec(codec: str) -> None:
    with pytest.raises(ValueError):  # UnicodeEncodeError, as before msgspec
        encode(Event("job", {"s": "\ud800"}), b"node", None, 1_000_000)


def entry_with(body: bytes) -> dict[bytes, bytes]:
    return {b"v": b"1", b"origin": b"other", b"type": b"job", b"event": body}


def good_body(data: str) -> bytes:
    payload = Event("job", {}).to_dict()
    return json.dumps(payload).replace('"data": {}', f'"data": {data}').encode()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # What the json module reads and msgspec does not: read as before.
        ('{"x": "\\ud800"}', "\ud800"),
        ('{"x": 123456789012345678901234567890}', 123456789012345678901234567890),
    ],
)
def test_entries_the_json_module_reads_are_read_alike_by_either_codec(codec: str, data: str, expected: Any) -> None:
    got = decode(entry_with(good_body(data)), 1_000_000).data["x"]
    assert (str(got) if isinstance(got, float) else got) == expected


@pytest.mark.parametrize("data", ['{"x": NaN}', '{"x": 1e400}'])
def test_entries_with_numbers_to_dict_cannot_write_are_invalid_for_either_codec(codec: str, data: str) -> None:
    """The json module reads NaN and overflows 1e400 to inf, but an event
    holding them could never be written again (to_dict refuses them), so
    ``from_dict`` refuses them too: the entry is invalid, whoever wrote it."""
    with pytest.raises(WireError, match="has no JSON form") as caught:
        decode(entry_with(good_body(data)), 1_000_000)
    assert caught.value.reason == "invalid_event"


@pytest.mark.parametrize("body", [b"{not json", b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe", b'{"version": 1'])
def test_malformed_entries_are_refused_alike_by_either_codec(codec: str, body: bytes) -> None:
    with pytest.raises(WireError) as caught:
        decode(entry_with(body), 1_000_000)
    assert caught.value.reason == "malformed_json"


@needs_msgspec
def test_msgspec_is_what_runs_when_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    fast_dumps, fast_loads = _wire._fast_dumps, _wire._fast_loads
    assert fast_dumps is not None
    assert fast_loads is not None

    def dumps(payload: Any) -> bytes:
        calls.append("dumps")
        return fast_dumps(payload)

    def loads(body: bytes) -> Any:
        calls.append("loads")
        return fast_loads(body)

    monkeypatch.setattr(_wire, "_fast_dumps", dumps)
    monkeypatch.setattr(_wire, "_fast_loads", loads)
    assert decode(encode(Event("job", {"n": 1}), b"node", None, 1_000_000), 1_000_000).data == {"n": 1}
    assert calls == ["dumps", "loads"]


def test_without_msgspec_installed_the_json_module_does_it_all() -> None:
    script = (
        "import sys; sys.modules['msgspec'] = None  # as if not installed\n"
        "from blinker_events import Event\n"
        "from blinker_events.redis import _wire\n"
        "assert _wire._fast_dumps is None and _wire._fast_loads is None\n"
        "event = Event('job', {'n': 2**100})\n"
        "assert _wire.decode(_wire.encode(event, b'node', None, 10**6), 10**6).data == {'n': 2**100}\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)


# -- delivery: waiting for the worker's futures ---------------------------------


def test_a_batch_waits_for_every_worker_future_even_one_finishing_after_the_last() -> None:
    futures: list[Future[Any]] = [Future() for _ in range(5)]
    order: list[str] = []

    def finish() -> None:  # the last first, then the others out of order
        for i in (4, 2, 0, 3, 1):
            time.sleep(0.02)
            order.append(f"set {i}")  # before: once set, the waiter may run at once
            futures[i].set_result(i)

    async def main() -> None:
        thread = threading.Thread(target=finish)
        thread.start()
        outcomes = await _delivery._settled(futures)
        order.append("all done")
        assert outcomes == [0, 1, 2, 3, 4]
        thread.join()

    asyncio.run(main())
    assert order[-1] == "all done"
    assert all(f.done() for f in futures)


def test_outcomes_of_worker_futures_are_reports_exceptions_or_a_cancellation() -> None:
    done: Future[Any] = Future()
    done.set_result("report")
    failed: Future[Any] = Future()
    failed.set_exception(KeyError("k"))
    cancelled: Future[Any] = Future()
    cancelled.cancel()
    assert _delivery._outcome(done) == "report"
    assert isinstance(_delivery._outcome(failed), KeyError)
    assert isinstance(_delivery._outcome(cancelled), CancelledError)
    assert _delivery._outcome(Future()) is None  # not done yet


def test_the_seen_ids_keep_the_newest_and_forget_the_oldest_in_constant_time() -> None:
    seen = _delivery.SeenIds(3)
    for event_id in "abcde":
        seen.add(event_id)
    assert list(seen) == ["c", "d", "e"]
    assert "b" not in seen
    # Full at 200,000, another 200,000 ids: a dict's oldest key is found by
    # skipping every slot deleted before it, which took some 4 s here; an
    # OrderedDict's, 0.1 s. The bound is generous: it proves the shape.
    seen = _delivery.SeenIds(200_000)
    for n in range(200_000):
        seen.add(str(n))
    started = time.perf_counter()
    for n in range(200_000, 400_000):
        seen.add(str(n))
    assert time.perf_counter() - started < 3.0
    assert len(seen) == 200_000
    assert next(iter(seen)) == "200000"
