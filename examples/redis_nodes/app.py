"""Three processes sharing one bus's events through Redis Streams.

The web process (this one) starts a throwaway redis-server and two worker
processes, then publishes with plain ``publish_sync``:

- ``cache.invalidate`` over a *broadcast* bridge: every worker receives it;
- ``email.send`` over a *group* bridge: each e-mail is sent by exactly one
  worker, whichever the group hands it to.

Each worker prints what it handled; the web process prints their output and
the bridges' stats. Run it from a checkout with ``python3 dev.py redis-example``
(it needs Debian's redis-server).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from blinker_events import Event, EventBus
from blinker_events.redis import RedisBridge
from blinker_events.redis.testing import RedisServer

ROOT = Path(__file__).resolve().parents[2]
EMAILS = 6


def bridges(bus: EventBus, url: str, *, worker: bool) -> list[RedisBridge]:
    """The two bridges every process has: one per mode, each for its own types."""
    direction = "in" if worker else "out"
    return [
        RedisBridge(bus, url, stream="demo.cache", event_types=["cache.invalidate"], direction=direction),
        RedisBridge(
            bus, url, stream="demo.jobs", event_types=["email.send"], mode="group", group="mailers", direction=direction
        ),
    ]


def run_worker(name: str, url: str) -> int:
    bus = EventBus(name=name, timeout=5.0)

    @bus.subscribe("cache.invalidate")
    def invalidate(event: Event) -> None:
        print(f"{name}: dropped cache key {event.data['key']!r} (from {event.origin})", flush=True)

    @bus.subscribe("email.send")
    def send_email(event: Event) -> None:
        print(f"{name}: sent e-mail #{event.data['n']} to {event.data['to']}", flush=True)

    mine = bridges(bus, url, worker=True)
    for bridge in mine:
        bridge.start()
    print("READY", flush=True)
    sys.stdin.read()  # until the web process closes our stdin
    for bridge in mine:
        bridge.stop()
    bus.shutdown(timeout=5)
    return 0


def run_web() -> int:
    with RedisServer() as server:
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "examples.redis_nodes", "--worker", name, "--url", server.url],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            for name in ("worker-1", "worker-2")
        ]
        for worker in workers:
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "READY":
                raise SystemExit("a worker did not start")
        bus = EventBus(name="web")
        mine = bridges(bus, server.url, worker=False)
        for bridge in mine:
            bridge.start()
        bus.publish_sync(Event("cache.invalidate", {"key": "product:42"}))
        for n in range(1, EMAILS + 1):
            report = bus.publish_sync(Event("email.send", {"n": n, "to": f"customer{n}@example.com"}))
            assert report.handed_off  # group mode: a worker will run it, not this process
        for bridge in mine:
            bridge.stop()
        time.sleep(1.0)  # let the workers finish what they read
        print("web: published 1 cache invalidation (broadcast) and 6 e-mails (group)\n")
        for worker in workers:
            out, _ = worker.communicate("", timeout=30)
            print(out.strip(), "\n")
        bus.shutdown(timeout=5)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args.worker, args.url)
    return run_web()
