"""One node of a multi-process Redis bridge test: a bus and a bridge in a process of its own.

``tests/test_redis_processes.py`` runs it as a subprocess, from the repository root::

    python -m tests.redis_node consume --url redis://127.0.0.1:PORT/0 --stream s --records out.jsonl
    python -m tests.redis_node produce --url ... --stream s --count 1000 --name producer
    python -m tests.redis_node both    --url ... --stream s --count 200 --name a --records a.jsonl

Roles:

``consume``
    Start a bridge (``--direction in`` by default) with one receiver of ``order.created``.
``produce``
    Start a bridge (``--direction out`` by default), publish ``--count`` events
    ``{"n": i, "from": NAME}`` with ``publish_sync`` as fast as possible (or with a
    pause every 100 events, ``--pause``), stop the bridge (flushing) and exit.
``both``
    Consume and produce on one bridge (``--direction both``): after ``READY``, wait for
    a ``GO`` line on stdin, then publish, then keep receiving.

Protocol. Once ``bridge.start()`` returned True the node prints ``READY <node_id>``.
Each event a receiver gets is appended to ``--records`` as one JSON line
``{"n", "from", "id", "origin"}``, flushed at once, so a SIGKILL loses nothing already
recorded. A receiving node runs until stdin is closed, ``--until`` remote events were
received, or ``--seconds`` passed, whichever comes first. Every node ends by printing
``STATS <json of bridge.stats()>`` (with ``"stop_dropped"``: what ``stop()`` returned).
``--hang-after N`` blocks the receiver for good after its Nth event, so that a test can
SIGKILL the node while it holds entries it read but did not acknowledge.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import IO, Any

from blinker_events import Event, EventBus
from blinker_events.redis import RedisBridge

EVENT_TYPE = "order.created"
#: Per-receiver timeout: generous, a loaded CI machine must not turn slowness into failures.
RECEIVER_TIMEOUT = 30.0
#: How long ``--hang-after`` blocks the receiver: less than RECEIVER_TIMEOUT, so it is no failure.
HANG_SECONDS = 20.0


class Recorder:
    """Appends one JSON line per received event to a file and counts remote ones."""

    def __init__(self, path: str | None, until: int | None, hang_after: int | None, done: threading.Event) -> None:
        self._file: IO[str] | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self._until = until
        self._hang_after = hang_after
        self._done = done
        self._lock = threading.Lock()
        self.remote = 0

    def record(self, event: Event) -> None:
        line = json.dumps(
            {"n": event.data["n"], "from": event.data["from"], "id": event.event_id, "origin": event.origin}
        )
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
            if event.is_remote:
                self.remote += 1
                if self._until is not None and self.remote >= self._until:
                    self._done.set()
            hang = self.remote == self._hang_after
        if hang:
            # Stuck in the middle of a batch, its entries read but not acknowledged,
            # until the test SIGKILLs the process (bounded, should the test be gone).
            time.sleep(HANG_SECONDS)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=("consume", "produce", "both"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--stream", default="events")
    parser.add_argument("--mode", choices=("broadcast", "group"), default="broadcast")
    parser.add_argument("--group", default=None)
    parser.add_argument("--consumer", default=None)
    parser.add_argument("--direction", choices=("both", "out", "in"), default=None, help="default: by role")
    parser.add_argument("--claim-idle", type=float, default=60.0)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--name", default="node", help="the 'from' field of published events; the bus's name")
    parser.add_argument("--count", type=int, default=0, help="events to publish (produce, both)")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds to sleep after every 100 events published")
    parser.add_argument("--records", default=None, help="file to append one JSON line per received event to")
    parser.add_argument("--until", type=int, default=None, help="exit after this many remote events")
    parser.add_argument("--seconds", type=float, default=120.0, help="exit after this long at the latest")
    parser.add_argument("--hang-after", type=int, default=None, help="block the receiver after this many events")
    parser.add_argument("--async-receiver", action="store_true", help="subscribe an async def receiver")
    return parser.parse_args(argv)


def say(line: str) -> None:
    print(line, flush=True)


def watch_stdin(closed: threading.Event, go: threading.Event) -> None:
    """Set ``go`` on a ``GO`` line and ``closed`` at end of input (a daemon thread)."""
    for line in sys.stdin:
        if line.strip() == "GO":
            go.set()
    closed.set()
    go.set()  # nobody will say GO any more


def publish(bus: EventBus, name: str, count: int, pause: float) -> None:
    for n in range(count):
        bus.publish_sync(Event(EVENT_TYPE, {"n": n, "from": name}))
        if pause and n % 100 == 99:
            time.sleep(pause)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    direction = args.direction or {"consume": "in", "produce": "out", "both": "both"}[args.role]
    receives = args.role != "produce"
    deadline = time.monotonic() + args.seconds

    bus = EventBus(name=args.name, timeout=RECEIVER_TIMEOUT)
    stop = threading.Event()
    recorder = Recorder(args.records, args.until, args.hang_after, stop) if receives else None
    if recorder is not None:
        if args.async_receiver:

            async def receive_async(event: Event) -> None:
                recorder.record(event)

            bus.subscribe(EVENT_TYPE, receive_async)
        else:
            bus.subscribe(EVENT_TYPE, recorder.record)

    group_options: dict[str, Any] = {}
    if args.mode == "group":
        group_options = {"group": args.group, "consumer": args.consumer}
    bridge = RedisBridge(
        bus,
        args.url,
        stream=args.stream,
        event_types=[EVENT_TYPE],
        mode=args.mode,
        direction=direction,
        claim_idle=args.claim_idle,
        batch_size=args.batch_size,
        **group_options,
    )
    if not bridge.start(timeout=20.0):
        say("FAILED bridge.start() timed out")
        bus.shutdown(timeout=5.0)
        return 1

    go = threading.Event()
    threading.Thread(target=watch_stdin, args=(stop, go), daemon=True).start()
    say(f"READY {bridge.node_id}")

    if args.role == "produce":
        publish(bus, args.name, args.count, args.pause)
    else:
        if args.role == "both":
            go.wait(max(0.0, deadline - time.monotonic()))
            if not stop.is_set():
                publish(bus, args.name, args.count, args.pause)
        stop.wait(max(0.0, deadline - time.monotonic()))

    dropped = bridge.stop(timeout=30.0)
    stats = bridge.stats() | {"stop_dropped": dropped}
    bus.shutdown(timeout=10.0)
    if recorder is not None:
        recorder.close()
    say(f"STATS {json.dumps(stats)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
