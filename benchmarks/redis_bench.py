"""Scenario R: events per second across two processes through Redis.

This process publishes ``n`` events with ``publish_sync`` on a bus whose
RedisBridge writes them (direction "out"); a second process, started fresh,
reads them with its own bridge and counts them in a sync receiver. The rate
is ``n`` over the time from the first publish here to the last receipt
there (CLOCK_MONOTONIC is one clock for every process of the machine). The
consumer checks it got every event exactly once before it reports. Needs
redis-server (a throwaway one is started) and the redis extra.

Beside the bridge, in the same run and interleaved with it, *raw* redis-py
does the transport alone between two processes: this process XADDs the same
entry bytes the bridge writes (pipelined, ``batch_size`` per round trip, the
same approximate ``maxlen``), the other reads them with XREADGROUP and
XACKs each batch, checking it got all ``n``. The bridge's rate over raw's
is the figure to compare across machines: both share the machine's drift.

Run as a script, two tools for the maintainers: ``instructions [--tree DIR]``
counts the instructions per event of a group-mode reading process under
callgrind (independent of the machine's load), and ``side-by-side --against
DIR`` runs this checkout, another one and raw redis-py interleaved.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from time import monotonic

from blinker_events import Event, EventBus

#: The bridge's defaults, which the raw baseline mirrors.
BATCH = 500
MAXLEN = 100_000

_CONSUMER = """
import sys, threading, time
from blinker_events import EventBus
from blinker_events.redis import RedisBridge
url, stream, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
bus = EventBus(timeout=10.0)
seen = set()
done = threading.Event()
last = [0.0]
def receiver(event):
    seen.add(event.data["i"])
    if len(seen) == n:
        last[0] = time.monotonic()
        done.set()
bus.subscribe("bench.redis", receiver)
options = {"group": "bench"} if mode == "group" else {}
bridge = RedisBridge(bus, url, stream=stream, mode=mode, direction="in", **options)
assert bridge.start(timeout=10)
print("READY", flush=True)
assert done.wait(120), f"got {len(seen)} of {n}"
deadline = time.monotonic() + 10  # the reader counts a batch once all of it ran
while bridge.stats()["delivered"] < n and time.monotonic() < deadline:
    time.sleep(0.01)
stats = bridge.stats()
assert stats["delivered"] == n and stats["duplicates"] == 0, stats
bridge.stop()
print(last[0], flush=True)
"""

_RAW_CONSUMER = """
import sys, time
import redis
url, stream, n, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
client = redis.Redis.from_url(url)
client.xgroup_create(stream, "bench", id="$", mkstream=True)
print("READY", flush=True)
got = 0
ids = set()
while got < n:
    for _, entries in client.xreadgroup("bench", "raw", {stream: ">"}, count=batch, block=1000) or ():
        done = [entry_id for entry_id, _ in entries]
        ids.update(done)
        got += len(done)
        client.xack(stream, "bench", *done)
last = time.monotonic()
assert got == n == len(ids), (got, n, len(ids))
print(last, flush=True)
"""


def _one_run(consumer_args: list[str], produce: Callable[[], tuple[float, float]], root: str) -> tuple[float, float]:
    """(publish rate, seconds end to end) of one run: start the consumer
    process, let ``produce`` write (it returns its start time and its own
    rate), wait for the consumer's time of its last receipt."""
    consumer = subprocess.Popen([sys.executable, "-c", *consumer_args], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert consumer.stdout is not None
        if consumer.stdout.readline().strip() != "READY":
            raise RuntimeError("the consumer process did not start")
        start, publish_rate = produce()
        out, _ = consumer.communicate(timeout=120)
        if consumer.returncode:
            raise RuntimeError(f"the consumer failed (exit {consumer.returncode})")
        return publish_rate, float(out.strip()) - start
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()


def _bridge_producer(url: str, stream: str, mode: str, n: int) -> Callable[[], tuple[float, float]]:
    def produce() -> tuple[float, float]:
        from blinker_events.redis import RedisBridge

        bus = EventBus(timeout=10.0)
        options = {"group": "bench"} if mode == "group" else {}
        bridge = RedisBridge(bus, url, stream=stream, mode=mode, direction="out", **options)
        if not bridge.start(timeout=10):
            raise RuntimeError("the producer's bridge did not connect")
        publish = bus.publish_sync
        start = monotonic()
        for i in range(n):
            publish(Event("bench.redis", {"i": i}))
        publish_rate = n / (monotonic() - start)
        if bridge.stop(timeout=60) or bridge.stats()["dropped"]:
            raise RuntimeError(f"the producer dropped events: {bridge.stats()}")
        bus.shutdown()
        return start, publish_rate

    return produce


def raw_entry() -> dict[bytes, bytes]:
    """The entry the bridge writes for one of the benchmark's events."""
    from blinker_events.redis._wire import encode

    return encode(Event("bench.redis", {"i": 12345}), b"bench-node-0123456789", None, 1_000_000)


def _raw_producer(url: str, stream: str, n: int) -> Callable[[], tuple[float, float]]:
    def produce() -> tuple[float, float]:
        import redis

        fields = raw_entry()
        client = redis.Redis.from_url(url)
        start = monotonic()
        for first in range(0, n, BATCH):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(BATCH, n - first)):
                pipe.xadd(stream, fields, maxlen=MAXLEN, approximate=True)  # type: ignore[arg-type]
            pipe.execute()
        publish_rate = n / (monotonic() - start)
        client.close()
        return start, publish_rate

    return produce


CASES = ("broadcast", "group", "raw")


def redis_scenario(n: int, repeats: int, cases: tuple[str, ...] = CASES) -> dict[str, dict[str, float]]:
    """Per case (bridge broadcast, bridge group, raw redis-py): the median
    end-to-end events per second over ``repeats`` runs, the cases
    interleaved (their order rotating each repeat), and the median rate of
    the publishing side alone."""
    from blinker_events.redis.testing import RedisServer

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rates: dict[str, list[float]] = {case: [] for case in cases}
    publish_rates: dict[str, list[float]] = {case: [] for case in cases}
    with RedisServer() as server:
        import redis

        cleaner = redis.Redis.from_url(server.url)
        for run in range(repeats):
            order = cases[run % len(cases) :] + cases[: run % len(cases)]
            for case in order:
                stream = f"bench-{case}-{run}"
                if case == "raw":
                    args = [_RAW_CONSUMER, server.url, stream, str(n), str(BATCH)]
                    produce = _raw_producer(server.url, stream, n)
                else:
                    args = [_CONSUMER, server.url, stream, case, str(n)]
                    produce = _bridge_producer(server.url, stream, case, n)
                publish_rate, seconds = _one_run(args, produce, root)
                rates[case].append(n / seconds)
                publish_rates[case].append(publish_rate)
                cleaner.delete(stream)  # keep the server's memory flat
    return {
        case: {
            "events_per_second": statistics.median(rates[case]),
            "publish_per_second": statistics.median(publish_rates[case]),
        }
        for case in cases
    }


# -- the reading process's instructions, which do not depend on the load ------

_BACKLOG_CONSUMER = """
import sys, threading, time
from blinker_events import EventBus
from blinker_events.redis import RedisBridge
url, stream, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
bus = EventBus(timeout=10.0)
seen = set()
done = threading.Event()
def receiver(event):
    seen.add(event.data["i"])
    if len(seen) == n:
        done.set()
bus.subscribe("bench.redis", receiver)
bridge = RedisBridge(bus, url, stream=stream, mode="group", group="bench", direction="in")
assert bridge.start(timeout=60)
assert done.wait(600), f"got {len(seen)} of {n}"
while bridge.stats()["delivered"] < n:  # the reader counts a batch once all of it ran
    time.sleep(0.01)
bridge.stop()
bus.shutdown()
"""


def reader_instructions(tree: str, small: int, large: int) -> float:
    """Instructions per event of a group-mode reading process (``tree``'s
    package), counted by callgrind: a producer bridge writes a backlog of
    ``small`` events, then of ``large``, and a fresh consumer reads each;
    the difference of the two totals over the difference of the sizes
    cancels start-up and shutdown. Needs valgrind."""
    import tempfile

    from blinker_events.redis import RedisBridge
    from blinker_events.redis.testing import RedisServer

    def run(url: str, n: int) -> int:
        stream = f"backlog-{n}"
        bus = EventBus(timeout=10.0)
        producer = RedisBridge(bus, url, stream=stream, mode="group", group="bench", direction="out")
        if not producer.start(timeout=10):
            raise RuntimeError("the producer's bridge did not connect")
        for i in range(n):
            bus.publish_sync(Event("bench.redis", {"i": i}))
        if producer.stop(timeout=60):
            raise RuntimeError("the producer dropped events")
        bus.shutdown()
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "callgrind.out")
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c"]
                + [_BACKLOG_CONSUMER, url, stream, str(n)],
                check=True,
                capture_output=True,
                cwd=tree,
                env={**os.environ, "PYTHONPATH": tree, "PYTHONHASHSEED": "0"},
            )
            with open(out) as counts:
                for line in counts:
                    if line.startswith(("summary:", "totals:")):
                        return int(line.split()[1])
        raise RuntimeError("no totals in callgrind's output")

    with RedisServer() as server:
        return (run(server.url, large) - run(server.url, small)) / (large - small)


# -- side by side with another checkout ---------------------------------------


def _one_case(tree: str, case: str, url: str, stream: str, n: int) -> float:
    """End-to-end events per second of one run of ``case`` ("group",
    "broadcast" or "raw") with ``tree``'s package on both sides."""
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "one", tree, case, url, stream, str(n)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": tree},
    )
    return float(out.stdout.split()[-1])


def side_by_side(against: str, n: int, repeats: int, mode: str) -> dict[str, list[float]]:
    """Per repeat, ``mode`` with this checkout's package, ``mode`` with
    ``against``'s and raw redis-py, in rotating order on one redis-server:
    each one's rate over raw's in the same repeat."""
    from blinker_events.redis.testing import RedisServer

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cases = [("this", here, mode), ("against", against, mode), ("raw", here, "raw")]
    ratios: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    with RedisServer() as server:
        import redis

        cleaner = redis.Redis.from_url(server.url)
        for run in range(repeats):
            rates = {}
            for name, tree, case in cases[run % 3 :] + cases[: run % 3]:
                stream = f"side-{name}-{run}"
                rates[name] = _one_case(tree, case, server.url, stream, n)
                cleaner.delete(stream)
            for name, rate in rates.items():
                ratios[name].append(rate / rates["raw"])
            shown = {name: f"{rate:,.0f}/s ({rate / rates['raw']:.2f}x)" for name, rate in rates.items()}
            print(run, shown, flush=True)
    return ratios


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Benchmark R's tools for the maintainers.")
    commands = parser.add_subparsers(dest="command", required=True)
    count = commands.add_parser("instructions", help="instructions per event of a group-mode reading process")
    count.add_argument("--tree", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    count.add_argument("--small", type=int, default=2_000)
    count.add_argument("--large", type=int, default=12_000)
    side = commands.add_parser("side-by-side", help="this checkout against another, and raw redis-py, interleaved")
    side.add_argument("--against", required=True, help="a checkout (say, from git archive) of the other revision")
    side.add_argument("--mode", choices=("group", "broadcast"), default="group")
    side.add_argument("--events", type=int, default=50_000)
    side.add_argument("--repeats", type=int, default=5)
    one = commands.add_parser("one")  # one run, in a process of its own (side-by-side's)
    for name in ("tree", "case", "url", "stream", "n"):
        one.add_argument(name)
    args = parser.parse_args()
    if args.command == "instructions":
        per_event = reader_instructions(args.tree, args.small, args.large)
        print(f"{args.tree}: {per_event:,.0f} instructions per event (group mode reader)")
    elif args.command == "side-by-side":
        ratios = side_by_side(os.path.abspath(args.against), args.events, args.repeats, args.mode)
        print({name: f"median {statistics.median(values):.3f}x raw" for name, values in ratios.items()})
    else:
        n = int(args.n)
        if args.case == "raw":
            consumer = [_RAW_CONSUMER, args.url, args.stream, str(n), str(BATCH)]
            produce = _raw_producer(args.url, args.stream, n)
        else:
            consumer = [_CONSUMER, args.url, args.stream, args.case, str(n)]
            produce = _bridge_producer(args.url, args.stream, args.case, n)
        print(n / _one_run(consumer, produce, args.tree)[1])


if __name__ == "__main__":
    _main()
