"""The Redis bridge at its seams: hostile entries on the wire, secrets in
URLs and options, entries trimmed before a reader got them, and writes
whose reply was lost -- each against a real redis-server (through a TCP
proxy on 127.0.0.1 where a fault must sit between bridge and Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("redis")

import redis

from blinker_events import Event, EventBus
from blinker_events.redis import RedisBridge
from blinker_events.redis._connection import redact
from blinker_events.redis._wire import encode
from blinker_events.redis.testing import RedisServer
from tests.conftest import wait_for

#: JSON nested 100,000 deep (200 KB): past the json module's recursion limit
#: on every Python (3.11's gives up near 1,000, later ones at a C limit of
#: some thousands), so decoding raises RecursionError.
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_server.url)
    yield conn
    conn.close()


def entry(n: int) -> dict[bytes, bytes]:
    """A good entry, as another node would write it."""
    return encode(Event("job", {"n": n}), b"elsewhere", None, 1_000_000)


def dead_reasons(client: redis.Redis, stream: str = "s:dead") -> list[bytes]:
    return [fields[b"dead.reason"] for _, fields in client.xrange(stream)]


# -- item: any exception while decoding one entry affects that entry only -----


def test_a_deeply_nested_entry_is_malformed_and_good_entries_keep_flowing_in_a_group(
    redis_server: RedisServer, client: redis.Redis, buses: Callable[..., EventBus]
) -> None:
    bus = buses()
    got: list[int] = []
    bus.subscribe("job", lambda e: got.append(e.data["n"]))
    bridge = RedisBridge(bus, redis_server.url, stream="s", mode="group", group="g", claim_idle=0.2)
    assert bridge.start()
    pipe = client.pipeline(transaction=False)  # one batch: the bad entry among good ones
    pipe.xadd("s", entry(1))
    pipe.xadd("s", {b"v": b"1", b"origin": b"cli", b"event": DEEP})
    pipe.xadd("s", entry(2))
    pipe.execute()
    wait_for(lambda: got == [1, 2], "the good entries")
    wait_for(lambda: bridge.stats()["dead_lettered"] == 1, "the dead letter")
    client.xadd("s", entry(3))
    wait_for(lambda: got == [1, 2, 3], "entries after it")
    # A delivery is counted once settled, just after its receivers ran.
    wait_for(lambda: bridge.stats()["delivered"] == 3, "the third delivery counted")
    stats = bridge.stats()
    assert (stats["malformed"], stats["dead_lettered"], stats["delivered"], stats["errors"]) == (1, 1, 3, 0)
    assert dead_reasons(client) == [b"malformed_json"]
    wait_for(lambda: client.xpending("s", "g")["pending"] == 0, "all acknowledged")


def test_a_deeply_nested_entry_does_not_stop_a_broadcast_reader(
    redis_server: RedisServer, client: redis.Redis, buses: Callable[..., EventBus], caplog: pytest.LogCaptureFixture
) -> None:
    bus = buses()
    got: list[int] = []
    bus.subscribe("job", lambda e: got.append(e.data["n"]))
    bridge = RedisBridge(bus, redis_server.url, stream="s")
    assert bridge.start()
    with caplog.at_level(logging.ERROR, "blinker_events.redis"):
        client.xadd("s", {b"v": b"1", b"origin": b"cli", b"event": DEEP})
        client.xadd("s", entry(1))
        wait_for(lambda: got == [1], "the entry after it")
    stats = bridge.stats()
    assert (stats["malformed"], stats["dead_lettered"], stats["errors"]) == (1, 1, 0)
    assert len([r for r in caplog.records if "bad entry" in r.getMessage()]) == 1  # logged once
    assert dead_reasons(client) == [b"malformed_json"]


# -- item: log lines built from wire data are bounded -------------------------


def test_log_lines_built_from_wire_data_are_bounded(
    redis_server: RedisServer, client: redis.Redis, buses: Callable[..., EventBus], caplog: pytest.LogCaptureFixture
) -> None:
    bus = buses()

    def fail(event: Event) -> None:
        raise RuntimeError("no")

    bus.subscribe("job", fail)
    bridge = RedisBridge(bus, redis_server.url, stream="s", max_payload=3_000_000)
    assert bridge.start()
    huge = b"x" * 2_000_000
    with caplog.at_level(logging.INFO, "blinker_events.redis"):
        client.xadd("s", {b"v": huge, b"origin": b"cli", b"event": b"{}"})  # a bad version
        bad_json = {b"v": b"1", b"origin": b"cli", b"event": b'{"version": 1, "event_type": "' + huge + b'"}'}
        client.xadd("s", bad_json)
        good = entry(1)
        good[b"origin"] = huge  # delivered, and its receiver fails
        client.xadd("s", good)
        wait_for(lambda: bridge.stats()["failed"] == 1, "the failed delivery")
        wait_for(lambda: bridge.stats()["dead_lettered"] == 2, "the dead letters")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) >= 3
    assert max(len(line) for line in lines) < 2000


# -- item: no password in any log line or message; a wrong one is named ------

SECRET = "wr0ng-s3cret"


class Password:
    """The server's ``requirepass``, changed with CONFIG SET and cleared at
    the end (the fixture's SHUTDOWN sends none)."""

    def __init__(self, server: RedisServer, password: str) -> None:
        self.server = server
        self.current = ""
        self.set(password)

    def set(self, password: str) -> None:
        auth = ["-a", self.current, "--no-auth-warning"] if self.current else []
        self.server.cli(*auth, "CONFIG", "SET", "requirepass", password)
        self.current = password

    def __enter__(self) -> Password:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server.is_running():
            self.set("")


def test_a_wrong_password_is_reported_as_an_authentication_failure_and_never_logged(
    redis_server: RedisServer, buses: Callable[..., EventBus], caplog: pytest.LogCaptureFixture
) -> None:
    with Password(redis_server, "the-right-one") as password, caplog.at_level(logging.DEBUG, "blinker_events"):
        by_url = RedisBridge(buses(), f"redis://user:{SECRET}@127.0.0.1:{redis_server.port}/0", stream="s")
        started = time.monotonic()
        assert by_url.start(timeout=60) is False
        assert time.monotonic() - started < 30  # refused: reported at once, not waited out
        by_option = RedisBridge(buses(), redis_server.url, stream="s", client_options={"password": SECRET})
        assert by_option.start(timeout=60) is False
        assert by_url.stats()["auth_failures"] >= 1
        assert by_option.stats()["auth_failures"] >= 1
        # It keeps trying: once the password is right, it connects.
        password.set(SECRET)
        by_option.bus.publish_sync(Event("job", {"n": 1}))
        wait_for(lambda: by_option.stats()["published"] == 1, "the write once the password is right")
    text = caplog.text
    assert "authentication" in text.lower()
    assert "no answer" not in text
    assert SECRET not in text


def test_no_message_or_log_line_carries_the_password_of_the_url(
    redis_server: RedisServer, buses: Callable[..., EventBus], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://user:{SECRET}@127.0.0.1:{redis_server.port}/0"
    with pytest.raises(ValueError, match="url") as bad_scheme:
        RedisBridge(EventBus(), f"http://user:{SECRET}@127.0.0.1:1/0")
    assert SECRET not in str(bad_scheme.value)
    assert "user:***@" in str(bad_scheme.value)
    with pytest.raises(ValueError, match="url") as in_query:
        RedisBridge(EventBus(), f"tcp://127.0.0.1:1/0?password={SECRET}")
    assert SECRET not in str(in_query.value)
    bus = buses()
    redis_server.cli("ACL", "SETUSER", "user", "on", f">{SECRET}", "~*", "&*", "+@all")  # an ACL user
    first = RedisBridge(bus, url, stream="s")
    assert first.start()
    with pytest.raises(RuntimeError, match="already has a running bridge") as second:
        RedisBridge(bus, url, stream="s").start()
    assert SECRET not in str(second.value)
    assert "user:***@" in str(second.value)
    assert first.stop() == 0
    redis_server.shutdown()  # the warning of a start that gets no answer
    with caplog.at_level(logging.DEBUG, "blinker_events"):
        assert RedisBridge(buses(), url, stream="s").start(timeout=0.2) is False
    assert "no answer from redis://user:***@127.0.0.1" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:pw@h:6379/0", "redis://user:***@h:6379/0"),
        ("redis://:p@ss/w@h/0", "redis://:***@h/0"),  # redis-py takes an unescaped @ or / in a password
        ("redis://h/0?db=1&password=pw", "redis://h/0?db=1&password=***"),
        ("unix:///run/redis.sock?password=pw", "unix:///run/redis.sock?password=***"),
        # redis-py percent-decodes query keys: these are its password too
        ("redis://h/0?pass%77ord=pw", "redis://h/0?pass%77ord=***"),
        ("redis://h/0?db=1&%70assword=pw&x=1", "redis://h/0?db=1&%70assword=***&x=1"),
        ("redis://h/0?PASSWORD=pw", "redis://h/0?PASSWORD=***"),
        ("redis://h/0?ssl_password=pw", "redis://h/0?ssl_password=***"),
        ("redis://h/0?db=1&passw=pw", "redis://h/0?db=1&passw=pw"),  # not a password
        ("redis://h/0?db=0;password=pw", "redis://h/0?db=0;password=***"),  # a ";" too, though redis-py splits on "&"
        ("redis://h/0?password=pw;db=0", "redis://h/0?password=***;db=0"),
        # an encoded ";" or "=" hides no password either
        ("redis://h/0?a=1%3Bpassword=pw", "redis://h/0?a=***"),
        ("redis://h/0?a=1;password%3Dpw&b=2", "redis://h/0?a=1;***&b=2"),
        ("redis://user@h/0", "redis://user@h/0"),  # a user name alone is no secret
        ("user:pw@h", "<a URL with userinfo, not shown>"),
        ("redis://:pw/x@h:6379/0", "redis://:***@h:6379/0"),  # a "/" alone, no "@" after it
        (" redis://:pw@h/0", " redis://:***@h/0"),  # leading whitespace (a config file's)
        ("\tredis://us/er:pw@h/0", "\tredis://us/er:***@h/0"),
        ("redis://:a://b@h/0", "redis://:***@h/0"),
        ("pw@redis://h/0", "<a URL with userinfo, not shown>"),
    ],
)
def test_urls_in_messages_have_their_password_replaced(url: str, shown: str) -> None:
    assert redact(url) == shown


# -- item: a write whose reply was lost is not written (nor handled) twice -----


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of a redis-server that can lose
    Redis's replies (``drop_replies``): the commands reach Redis, the
    answers never reach the client -- a reply stalled past its timeout."""

    def __init__(self, port: int) -> None:
        self._target = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.drop_replies = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self._target)
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not (replies and self.drop_replies.is_set()):
                    sink.sendall(data)
        for sock in (source, sink):  # one side gone: the other goes too
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            sock.close()


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[Proxy]:
    made = Proxy(redis_server.port)
    yield made
    made.close()


def test_a_write_whose_reply_was_lost_is_not_written_or_handled_twice(
    redis_server: RedisServer, client: redis.Redis, proxy: Proxy, buses: Callable[..., EventBus]
) -> None:
    consumer_bus = buses()
    handled: list[int] = []
    consumer_bus.subscribe("job", lambda e: handled.append(e.data["n"]))
    consumer = RedisBridge(consumer_bus, redis_server.url, stream="s", mode="group", group="g", direction="in")
    assert consumer.start()
    writer = RedisBridge(
        buses(), proxy.url, stream="s", mode="group", group="g", direction="out", client_options={"socket_timeout": 2}
    )
    assert writer.start()
    proxy.drop_replies.set()
    for n in range(500):
        writer.bus.publish_sync(Event("job", {"n": n}))
    wait_for(lambda: writer.stats()["connection_errors"] == 1, "the writer timing out on its lost reply")
    written = client.xlen("s")
    assert written >= 1  # what it wrote reached Redis
    proxy.drop_replies.clear()  # the writer retries
    wait_for(lambda: writer.stats()["published"] == 500, "the writer done")
    assert client.xlen("s") == 500
    wait_for(lambda: len(handled) == 500, "every event handled")
    assert sorted(handled) == list(range(500))
    assert consumer.stats()["duplicates"] == 0


# -- item: entries trimmed before a lagging reader got them are counted -------


def lag_behind_a_trim(
    bridge: RedisBridge, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> tuple[list[int], int]:
    """Hold the bridge's reader in the delivery of entry 0 while 50 more are
    written with an exact MAXLEN of 10, so entries 1-40 are trimmed before
    it reads them; then let it go. Returns what it delivered, once it has
    delivered 41-50 too, and how many lines it logged about the trim."""
    got: list[int] = []
    entered, release = threading.Event(), threading.Event()

    def slow(event: Event) -> None:
        if event.data["n"] == 0:
            entered.set()
            release.wait(30)
        got.append(event.data["n"])

    bridge.bus.subscribe("job", slow)
    assert bridge.start()
    with caplog.at_level(logging.ERROR, "blinker_events.redis"):
        client.xadd("s", entry(0))
        wait_for(entered.is_set, "the reader holding entry 0")
        for n in range(1, 51):
            client.xadd("s", entry(n), maxlen=10, approximate=False)
        release.set()
        wait_for(lambda: len(got) == 11, "the entries left in the stream")
    trim_lines = [r for r in caplog.records if "trimmed" in r.getMessage()]
    return got, len(trim_lines)


def test_entries_trimmed_before_a_lagging_broadcast_reader_got_them_are_counted_and_logged(
    redis_server: RedisServer, client: redis.Redis, buses: Callable[..., EventBus], caplog: pytest.LogCaptureFixture
) -> None:
    bridge = RedisBridge(buses(), redis_server.url, stream="s", maxlen=None)
    got, logged = lag_behind_a_trim(bridge, client, caplog)
    assert got == [0, *range(41, 51)]
    assert bridge.stats()["lost_to_trim"] == 40
    assert logged == 1


def test_entries_trimmed_before_a_lagging_group_read_them_are_counted_once_and_logged(
    redis_server: RedisServer, client: redis.Redis, buses: Callable[..., EventBus], caplog: pytest.LogCaptureFixture
) -> None:
    bridge = RedisBridge(buses(), redis_server.url, stream="s", mode="group", group="g", direction="in", maxlen=None)
    # A second node of the group, idle until the gap is there: it must not count it again.
    other = RedisBridge(buses(), redis_server.url, stream="s", mode="group", group="g", direction="in")
    got, logged = lag_behind_a_trim(bridge, client, caplog)
    other.bus.subscribe("job", lambda e: None)
    assert other.start()
    client.xadd("s", entry(51), maxlen=10, approximate=False)
    wait_for(lambda: bridge.stats()["delivered"] + other.stats()["delivered"] == 12, "entry 51")
    assert sorted(got) == [0, *range(41, 51)] or sorted(got) == [0, *range(41, 52)]
    assert bridge.stats()["lost_to_trim"] + other.stats()["lost_to_trim"] == 40
    assert logged == 1
    wait_for(lambda: client.xpending("s", "g")["pending"] == 0, "all acknowledged")


def test_a_batch_read_ahead_and_trimmed_while_pending_is_delivered_not_counted_lost(
    redis_server: RedisServer, client: redis.Redis, buses: Callable[..., EventBus], caplog: pytest.LogCaptureFixture
) -> None:
    """A group reader that is behind reads the next batch while it delivers
    the one in hand, and holds that batch's acknowledgement for its next
    read. Trimmed from the stream and idle past ``claim_idle`` meanwhile,
    those entries are "deleted" to the reader's own claim -- but the reader
    holds them: they are delivered, not lost. Was: counted in lost_to_trim
    and logged as trimmed before they were handled."""
    got: list[int] = []
    entered, release = threading.Event(), threading.Event()

    def receiver(event: Event) -> None:
        if event.data["n"] == 2:
            entered.set()
            release.wait(30)
        got.append(event.data["n"])

    bus = buses()
    bus.subscribe("job", receiver)
    client.xgroup_create("s", "g", id="0", mkstream=True)
    for n in range(6):  # batches [0, 1] (fast: the reader reads ahead from then on), [2, 3], [4, 5]
        client.xadd("s", entry(n))
    options = {"batch_size": 2, "claim_idle": 0.5, "maxlen": None}
    bridge = RedisBridge(bus, redis_server.url, stream="s", mode="group", group="g", direction="in", **options)
    with caplog.at_level(logging.ERROR, "blinker_events.redis"):
        assert bridge.start()
        wait_for(entered.is_set, "the reader in entry 2, with [4, 5] read ahead")
        wait_for(lambda: client.xpending("s", "g")["pending"] == 4, "entries 2 to 5 pending")
        client.xtrim("s", maxlen=0, approximate=False)
        time.sleep(0.7)  # all four idle past claim_idle
        release.set()
        wait_for(lambda: sorted(got) == [0, 1, 2, 3, 4, 5], "every entry")
        wait_for(lambda: client.xpending("s", "g")["pending"] == 0, "all acknowledged")
    assert bridge.stats()["lost_to_trim"] == 0
    assert [r.getMessage() for r in caplog.records if "trimmed" in r.getMessage()] == []


@pytest.mark.parametrize(
    ("maker", "stream_existed"),
    [("consumer", False), ("consumer", True), ("producer", False), ("producer", True)],
)
def test_entries_trimmed_before_a_new_groups_first_read_are_counted_exactly_and_logged_once(
    redis_server: RedisServer,
    client: redis.Redis,
    buses: Callable[..., EventBus],
    caplog: pytest.LogCaptureFixture,
    maker: str,
    stream_existed: bool,
) -> None:
    """A group made (by a consumer that then stopped, or by a producer) but
    not yet read from: 550 entries written with an exact MAXLEN of 50 lose
    500 to the trim before the group's first read, and those are counted."""
    if stream_existed:
        client.xadd("s", entry(-1))
    direction = "in" if maker == "consumer" else "out"
    first = RedisBridge(buses(), redis_server.url, stream="s", mode="group", group="g", direction=direction)
    assert first.start()
    assert first.stop() == 0
    for n in range(550):
        client.xadd("s", entry(n), maxlen=50, approximate=False)
    bus = buses()
    got: list[int] = []
    bus.subscribe("job", lambda e: got.append(e.data["n"]))
    bridge = RedisBridge(bus, redis_server.url, stream="s", mode="group", group="g", direction="in", maxlen=None)
    with caplog.at_level(logging.ERROR, "blinker_events.redis"):
        assert bridge.start()
        wait_for(lambda: len(got) == 50, "the entries left in the stream")
        time.sleep(0.2)  # a late second count would show here
    assert got == list(range(500, 550))
    assert bridge.stats()["lost_to_trim"] == 500
    assert [r.getMessage() for r in caplog.records if "trimmed" in r.getMessage()] == [
        "redis bridge: 500 entr(ies) of s were trimmed before group g read them (raise maxlen)"
    ]


def test_a_loop_ending_while_a_lost_write_waits_for_its_retry_does_not_write_it_twice(
    redis_server: RedisServer, client: redis.Redis, proxy: Proxy
) -> None:
    bus = EventBus()
    bridge = RedisBridge(bus, proxy.url, stream="s", direction="out", client_options={"socket_timeout": 2})

    async def app_without_stop_async() -> None:
        assert await bridge.start_async()
        proxy.drop_replies.set()
        for n in range(100):
            await bus.publish(Event("job", {"n": n}))
        for _ in range(3000):  # up to 15 s
            if bridge.stats()["connection_errors"]:  # the write timed out; its retry waits
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError("timed out waiting for the lost reply")
        proxy.drop_replies.clear()
        # Returning now ends the loop: the writer is cancelled in its backoff
        # and writes what it holds in a last flush.

    try:
        asyncio.run(app_without_stop_async())
        assert not bridge.running
        stats = bridge.stats()
        assert stats["published"] + stats["dropped"] == 100
        assert client.xlen("s") == stats["published"] == 100
    finally:
        bus.shutdown(timeout=10)


def test_a_url_redis_cannot_parse_is_refused_at_construction_without_its_password() -> None:
    with pytest.raises(ValueError, match="url") as caught:
        RedisBridge(EventBus(), f"redis://:{SECRET}@127.0.0.1:port/0")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            f"redis://:{SECRET}/x@127.0.0.1:6379/0",  # redis-py reads the password as the port
            "url redis://:***@127.0.0.1:6379/0 is not valid: redis-py cannot parse it (its reason is not "
            "shown: it may quote the password; a '/', '?' or '#' in a password must be %-escaped)",
        ),
        (
            f" redis://:{SECRET}@127.0.0.1:6379/0",
            "url must be a redis://, rediss:// or unix:// URL, not  redis://:***@127.0.0.1:6379/0",
        ),
        (
            f"\tredis://user:{SECRET}@127.0.0.1:6379/0",
            "url must be a redis://, rediss:// or unix:// URL, not \tredis://user:***@127.0.0.1:6379/0",
        ),
        (
            "redis://127.0.0.1:port/0",  # nothing to hide: redis-py's reason is kept
            "url redis://127.0.0.1:port/0 is not valid: Port could not be cast to integer value as 'port'",
        ),
        (
            f"redis://127.0.0.1:6379/0?a=1%3Bpassword={SECRET}",  # the ";" encoded: redis-py decodes it
            "url redis://127.0.0.1:6379/0?a=*** is not valid: its query gives a password after a ';' (use '&')",
        ),
        (
            f"redis://127.0.0.1:6379/0?a=1;password%3D{SECRET}",  # the "=" encoded
            "url redis://127.0.0.1:6379/0?a=1;*** is not valid: its query gives a password after a ';' (use '&')",
        ),
        (
            # redis-py would send the password as part of ssl_cert_reqs, and quote it refusing that value
            f"rediss://127.0.0.1:6379/0?ssl_cert_reqs=none;ssl_password={SECRET}",
            "url rediss://127.0.0.1:6379/0?ssl_cert_reqs=none;ssl_password=*** is not valid: its query gives a "
            "password after a ';' (use '&')",
        ),
    ],
)
def test_a_refused_url_never_shows_its_password_whatever_it_contains(url: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        RedisBridge(EventBus(), url)
    assert str(caught.value) == message


# -- interpreter exit with a Redis that stopped answering -------------------------

_EXIT_SCRIPT = """
import sys
import blinker_events
from blinker_events import Event, EventBus
from blinker_events.redis import RedisBridge

blinker_events.ATEXIT_DRAIN_SECONDS = 2.0
buses = [EventBus(name=f"bus{i}") for i in range(3)]
bridges = [RedisBridge(bus, sys.argv[1], stream=f"s{i}", event_types=["e"]) for i, bus in enumerate(buses)]
assert all(bridge.start(timeout=5) for bridge in bridges)
print("ready", flush=True)
sys.stdin.readline()  # Redis is stopped now
for bus in buses:
    bus.publish_sync(Event("e", {"n": 1}))
"""


def test_bridges_at_interpreter_exit_share_the_exit_drains_bound(redis_server: RedisServer) -> None:
    """A Redis that stops answering (SIGSTOP: no reply, no closed socket)
    cannot stretch interpreter exit past ``ATEXIT_DRAIN_SECONDS``: running
    bridges are stopped by their buses' exit drain, within its one bound,
    not one after another with a flush of their own each (3 x 10 s)."""
    pid = int(redis.Redis.from_url(redis_server.url).info("server")["process_id"])
    child = subprocess.Popen(
        [sys.executable, "-c", _EXIT_SCRIPT, redis_server.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            child.stdin.write("\n")
            child.stdin.flush()
            child.wait(60)
            elapsed = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert child.returncode == 0
    assert elapsed < 8  # 2 s of drain, with room for a loaded machine; it was over 30 s
