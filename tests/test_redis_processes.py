"""The Redis bridge between real processes, through a real redis-server.

Each node is a subprocess running ``tests/redis_node.py``: its own interpreter,
bus and bridge. A node prints ``READY <node id>`` once its bridge started,
appends one JSON line per received event to its records file, and prints
``STATS <json>`` when it exits (stdin closed). The tests read those files.

Without ``redis-server`` the module is skipped, except under CI, where a
missing redis_server is a broken setup and must fail.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from blinker_events.redis.testing import RedisServer
from tests.conftest import need_redis_server

ROOT = Path(__file__).resolve().parents[1]
STREAM = "orders"
GROUP = "workers"
#: The longest any single wait of these tests may take.
WAIT = 45.0


@pytest.fixture(autouse=True)
def _needs_redis_server() -> None:
    need_redis_server()


class Node:
    """A ``tests.redis_node`` subprocess; its output goes to files in ``directory``."""

    def __init__(self, directory: Path, label: str, role: str, url: str, options: tuple[str, ...]) -> None:
        self.label = label
        self.records_path = directory / f"{label}.jsonl"
        self.stdout_path = directory / f"{label}.stdout"
        self.stderr_path = directory / f"{label}.stderr"
        argv = [sys.executable, "-m", "tests.redis_node", role, "--url", url, "--stream", STREAM, "--name", label]
        argv += ["--records", str(self.records_path), *options]
        with self.stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=stdout, stderr=stderr)
        self.node_id = ""

    def __repr__(self) -> str:
        return f"<Node {self.label} pid={self.process.pid}>"

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def describe(self) -> str:
        """The node's exit status and output, for failure messages."""
        code = self.process.poll()
        return (
            f"{self.label} (pid {self.process.pid}, exit code {code}):\n"
            f"stdout:\n{self.output()[-2000:]}\nstderr:\n{self.stderr_path.read_text(errors='replace')[-4000:]}"
        )

    def wait_ready(self, timeout: float = WAIT) -> str:
        """Wait for ``READY <node id>``; returns the node id."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if line.startswith("READY "):
                    self.node_id = line.split(" ", 1)[1]
                    return self.node_id
            if self.process.poll() is not None:
                pytest.fail(f"node exited before it was ready: {self.describe()}")
            time.sleep(0.02)
        pytest.fail(f"node not ready within {timeout} s: {self.describe()}")

    def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def count(self) -> int:
        """How many events the node has recorded so far (complete lines only)."""
        try:
            return self.records_path.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def records(self) -> list[dict[str, Any]]:
        """The events the node recorded, in the order it received them."""
        try:
            text = self.records_path.read_text()
        except FileNotFoundError:
            return []
        # A SIGKILL may cut the last line short: only complete lines count.
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def finish(self, timeout: float = WAIT) -> dict[str, Any]:
        """Close stdin (the node stops its bridge and exits); returns its final stats."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        return self.wait_stats(timeout)

    def wait_stats(self, timeout: float = WAIT) -> dict[str, Any]:
        """Wait for the node to exit by itself; returns its final stats."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"node did not exit within {timeout} s: {self.describe()}")
        assert code == 0, self.describe()
        for line in self.output().splitlines():
            if line.startswith("STATS "):
                stats: dict[str, Any] = json.loads(line.split(" ", 1)[1])
                return stats
        pytest.fail(f"node printed no STATS: {self.describe()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()


Spawn = Callable[..., Node]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """``spawn(label, role, url, *options)`` starts a node; every node is killed at the end."""
    nodes: list[Node] = []

    def make(label: str, role: str, url: str, *options: str) -> Node:
        node = Node(tmp_path, label, role, url, options)
        nodes.append(node)
        return node

    try:
        yield make
    finally:
        for node in nodes:
            node.kill()


def wait_until(condition: Callable[[], bool], what: str, nodes: list[Node], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            details = "\n".join(node.describe() for node in nodes)
            pytest.fail(
                f"timed out after {timeout} s waiting for {what}; counts {[n.count() for n in nodes]}\n{details}"
            )
        time.sleep(0.05)


def xlen(redis_server: RedisServer) -> int:
    return int(redis_server.cli("XLEN", STREAM))


def pending(redis_server: RedisServer) -> int:
    """The group's pending count (XPENDING summary form)."""
    return int(redis_server.cli("XPENDING", STREAM, GROUP).split("\n", 1)[0])


def run_id(redis_server: RedisServer) -> str:
    """The redis_server process's random id (INFO redis_server), new at every start."""
    for line in redis_server.cli("INFO", "server").splitlines():
        if line.startswith("run_id:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("INFO redis_server has no run_id")


def numbers(records: list[dict[str, Any]]) -> list[int]:
    return [record["n"] for record in records]


def union(nodes: list[Node]) -> set[int]:
    """Every event number any of ``nodes`` recorded."""
    return {n for node in nodes for n in numbers(node.records())}


# -- broadcast ---------------------------------------------------------------


def test_two_processes_exchange_events_both_ways(redis_server: RedisServer, spawn: Spawn) -> None:
    count = 200
    a = spawn("a", "both", redis_server.url, "--count", str(count))
    b = spawn("b", "both", redis_server.url, "--count", str(count))
    a_id, b_id = a.wait_ready(), b.wait_ready()
    assert a_id != b_id
    a.say("GO")
    b.say("GO")
    wait_until(lambda: a.count() >= 2 * count and b.count() >= 2 * count, "each node's 400 events", [a, b])
    wait_until(lambda: xlen(redis_server) >= 2 * count, "400 entries in the stream", [a, b])
    time.sleep(0.5)  # room for an unexpected extra delivery (an echo) to show up
    a_stats, b_stats = a.finish(), b.finish()

    for node, own, other, other_id in ((a, "a", "b", b_id), (b, "b", "a", a_id)):
        records = node.records()
        local = [r for r in records if r["origin"] is None]
        remote = [r for r in records if r["origin"] is not None]
        # Its own events ran here, locally, and never came back through Redis.
        assert {r["from"] for r in local} == {own}
        assert numbers(local) == list(range(count))
        # The other's events came exactly once each, in order, marked with their origin.
        assert {r["from"] for r in remote} == {other}
        assert {r["origin"] for r in remote} == {other_id}
        assert numbers(remote) == list(range(count))
        assert len({r["id"] for r in records}) == 2 * count

    for stats in (a_stats, b_stats):
        assert stats["published"] == count
        assert stats["delivered"] == count
        assert stats["skipped_own"] == count
        assert stats["dropped"] == stats["stop_dropped"] == 0
        assert stats["duplicates"] == stats["failed"] == stats["malformed"] == stats["errors"] == 0
    # No echo: each event was written once, by its publisher.
    assert xlen(redis_server) == 2 * count


def test_broadcast_reaches_every_subscriber_process(redis_server: RedisServer, spawn: Spawn) -> None:
    count = 1000
    # One of them receives with an async def receiver.
    consumers = [
        spawn("c1", "consume", redis_server.url),
        spawn("c2", "consume", redis_server.url),
        spawn("c3", "consume", redis_server.url, "--async-receiver"),
    ]
    for consumer in consumers:
        consumer.wait_ready()
    producer = spawn("producer", "produce", redis_server.url, "--count", str(count))
    producer_id = producer.wait_ready()
    producer_stats = producer.wait_stats()
    wait_until(lambda: all(c.count() >= count for c in consumers), "1000 events at each consumer", consumers)
    time.sleep(0.3)  # room for an unexpected extra delivery to show up
    stats = [consumer.finish() for consumer in consumers]

    assert producer_stats["published"] == count
    assert producer_stats["dropped"] == producer_stats["stop_dropped"] == 0
    for consumer, consumer_stats in zip(consumers, stats, strict=True):
        records = consumer.records()
        assert numbers(records) == list(range(count)), consumer.label  # each once, in order
        assert {r["origin"] for r in records} == {producer_id}
        assert {r["from"] for r in records} == {"producer"}
        assert consumer_stats["delivered"] == count
        assert consumer_stats["duplicates"] == consumer_stats["failed"] == consumer_stats["errors"] == 0
    assert xlen(redis_server) == count


# -- group -------------------------------------------------------------------


def group_options(*extra: str) -> tuple[str, ...]:
    return ("--mode", "group", "--group", GROUP, *extra)


def test_group_shares_the_work_exactly_once(redis_server: RedisServer, spawn: Spawn) -> None:
    count = 10_000
    consumers = [spawn(f"c{i}", "consume", redis_server.url, *group_options("--batch-size", "100")) for i in (1, 2, 3)]
    for consumer in consumers:
        consumer.wait_ready()
    producer = spawn("producer", "produce", redis_server.url, *group_options("--count", str(count)))
    producer.wait_ready()
    producer_stats = producer.wait_stats()
    wait_until(lambda: sum(c.count() for c in consumers) >= count, "10,000 events in all", consumers)
    wait_until(lambda: pending(redis_server) == 0, "no pending entries", consumers)
    time.sleep(0.3)  # room for an unexpected extra delivery to show up
    stats = [consumer.finish() for consumer in consumers]

    assert producer_stats["published"] == count
    assert producer_stats["dropped"] == producer_stats["stop_dropped"] == 0
    records = [consumer.records() for consumer in consumers]
    everything = [n for got in records for n in numbers(got)]
    assert len(everything) == count  # exactly once: nothing failed
    assert set(everything) == set(range(count))
    print(f"\nevents per consumer: {[len(got) for got in records]}")
    assert all(len(got) > 0 for got in records), [len(got) for got in records]
    for got in records:
        assert numbers(got) == sorted(numbers(got))  # each consumer in stream order
    assert sum(s["delivered"] for s in stats) == count
    assert sum(s["duplicates"] + s["failed"] + s["claimed"] + s["errors"] for s in stats) == 0
    assert pending(redis_server) == 0
    assert xlen(redis_server) == count


@pytest.mark.timeout(120)
def test_group_survives_a_sigkilled_consumer(redis_server: RedisServer, spawn: Spawn) -> None:
    count, batch, hang_after = 10_000, 100, 300
    options = group_options("--claim-idle", "1.0", "--batch-size", str(batch))
    # The victim stops in the middle of a batch after 300 events and is killed there,
    # so it surely dies holding entries it read (some of them recorded) but never acknowledged.
    victim = spawn("victim", "consume", redis_server.url, *options, "--hang-after", str(hang_after))
    survivors = [spawn(f"c{i}", "consume", redis_server.url, *options) for i in (1, 2)]
    consumers = [victim, *survivors]
    for consumer in consumers:
        consumer.wait_ready()
    # Throttled, so that the kill lands mid-stream: about 5 s for the lot.
    producer = spawn("producer", "produce", redis_server.url, *group_options("--count", str(count), "--pause", "0.05"))
    producer.wait_ready()
    wait_until(lambda: victim.count() >= hang_after, "the victim's first events", consumers)
    victim.kill()
    killed_at = sum(c.count() for c in consumers)
    assert killed_at < count, "the kill came after the stream was done; nothing was tested"

    producer_stats = producer.wait_stats()
    wait_until(lambda: len(union(consumers)) == count, "all 10,000 events after the kill", consumers)
    wait_until(lambda: pending(redis_server) == 0, "no pending entries", survivors)
    time.sleep(0.3)
    stats = [survivor.finish() for survivor in survivors]

    assert producer_stats["published"] == count
    assert producer_stats["dropped"] == 0
    assert union(consumers) == set(range(count))  # nothing lost
    total = sum(c.count() for c in consumers)
    duplicates = total - count
    print(f"\nSIGKILL at {killed_at} records in all; duplicates recorded: {duplicates} (bound {batch})")
    assert 0 <= duplicates <= batch
    # The only duplicates are what the victim recorded but never acknowledged.
    survivor_numbers = [n for s in survivors for n in numbers(s.records())]
    assert len(survivor_numbers) == len(set(survivor_numbers))
    assert sum(s["claimed"] for s in stats) > 0
    assert sum(s["failed"] + s["errors"] for s in stats) == 0
    assert pending(redis_server) == 0


# -- Redis restarts ----------------------------------------------------------


@pytest.mark.timeout(120)
def test_group_rides_out_a_redis_restart(spawn: Spawn) -> None:
    count = 5_000
    with RedisServer(appendonly=True) as redis_server:
        consumers = [spawn(f"c{i}", "consume", redis_server.url, *group_options()) for i in (1, 2)]
        for consumer in consumers:
            consumer.wait_ready()
        # Throttled, so that the restart lands mid-stream: about 4 s for the lot.
        options = group_options("--count", str(count), "--pause", "0.08")
        producer = spawn("producer", "produce", redis_server.url, *options)
        producer.wait_ready()
        wait_until(lambda: sum(c.count() for c in consumers) >= count // 2, "half the events", consumers)
        restarted_at = sum(c.count() for c in consumers)
        before = run_id(redis_server)
        redis_server.restart()
        assert run_id(redis_server) != before  # a new redis_server process, from the AOF
        assert restarted_at < count, "the restart came after the stream was done; nothing was tested"

        producer_stats = producer.wait_stats()
        wait_until(lambda: len(union(consumers)) == count, "all 5,000 events after the restart", consumers)
        wait_until(lambda: pending(redis_server) == 0, "no pending entries", consumers)
        time.sleep(0.3)
        stats = [consumer.finish() for consumer in consumers]
        entries = xlen(redis_server)

    assert producer_stats["dropped"] == producer_stats["stop_dropped"] == 0
    assert producer_stats["published"] == count
    # Whether a client saw the outage depends on timing: redis-py's own
    # retries may hide a restart this short. What must hold is above and below.
    assert union(consumers) == set(range(count))  # nothing lost
    total = sum(c.count() for c in consumers)
    print(
        f"\nrestart at {restarted_at} records; duplicates recorded: {total - count}, "
        f"entries written twice: {entries - count}; reconnects: producer {producer_stats['reconnects']}, "
        f"consumers {[s['reconnects'] for s in stats]}"
    )
    assert 0 <= total - count <= 500  # at most one batch (the default batch_size) written twice
    assert sum(s["failed"] + s["errors"] for s in stats) == 0


def test_the_example_runs_each_email_once_and_invalidates_every_cache() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.redis_nodes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    invalidated = sorted(line.split(":")[0] for line in lines if "dropped cache key 'product:42'" in line)
    emails = sorted(int(line.split("#")[1].split()[0]) for line in lines if "sent e-mail" in line)
    assert invalidated == ["worker-1", "worker-2"]
    assert emails == [1, 2, 3, 4, 5, 6]
