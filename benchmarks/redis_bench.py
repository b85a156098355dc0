"""Scenario R: events per second across two processes through Redis.

This process publishes ``n`` events with ``publish_sync`` on a bus whose
RedisBridge writes them (direction "out"); a second process, started fresh,
reads them with its own bridge and counts them in a sync receiver. The rate
is ``n`` over the time from the first publish here to the last receipt
there (CLOCK_MONOTONIC is one clock for every process of the machine). The
consumer checks it got every event exactly once before it reports. Needs
redis-server (a throwaway one is started) and the redis extra.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from time import monotonic

from blinker_events import Event, EventBus

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


def redis_scenario(n: int, repeats: int, mode: str = "broadcast") -> dict[str, float]:
    """Median end-to-end events per second over ``repeats`` runs."""
    from blinker_events.redis import RedisBridge
    from blinker_events.redis.testing import RedisServer

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rates, publish_rates = [], []
    with RedisServer() as server:
        for run in range(repeats):
            stream = f"bench-{mode}-{run}"
            consumer = subprocess.Popen(
                [sys.executable, "-c", _CONSUMER, server.url, stream, mode, str(n)],
                cwd=root,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert consumer.stdout is not None
                if consumer.stdout.readline().strip() != "READY":
                    raise RuntimeError("the consumer process did not start")
                bus = EventBus(timeout=10.0)
                options = {"group": "bench"} if mode == "group" else {}
                bridge = RedisBridge(bus, server.url, stream=stream, mode=mode, direction="out", **options)
                if not bridge.start(timeout=10):
                    raise RuntimeError("the producer's bridge did not connect")
                publish = bus.publish_sync
                start = monotonic()
                for i in range(n):
                    publish(Event("bench.redis", {"i": i}))
                publish_rates.append(n / (monotonic() - start))
                if bridge.stop(timeout=60) or bridge.stats()["dropped"]:
                    raise RuntimeError(f"the producer dropped events: {bridge.stats()}")
                bus.shutdown()
                out, _ = consumer.communicate(timeout=120)
                if consumer.returncode:
                    raise RuntimeError(f"the consumer failed (exit {consumer.returncode})")
                rates.append(n / (float(out.strip()) - start))
            finally:
                if consumer.poll() is None:
                    consumer.kill()
                    consumer.wait()
    return {"events_per_second": statistics.median(rates), "publish_per_second": statistics.median(publish_rates)}
