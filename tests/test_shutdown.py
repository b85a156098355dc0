"""Shutdown: one deadline for the whole of it, and every bus -- the default
one or one made by hand -- drains at interpreter exit within a bound, with
what cannot be delivered counted and logged."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from blinker_events import DeliveryReport, Event, EventBus

from .conftest import BusFactory, Demo, hold_the_worker

WAIT = 5.0
ROOT = Path(__file__).resolve().parent.parent


def test_shutdown_with_a_timeout_returns_within_about_that_timeout_in_all(bus: EventBus) -> None:
    release = threading.Event()
    inside = threading.Event()

    def slow_sync(event: Event) -> None:
        if event.data["n"] == 1:
            release.wait(WAIT)

    async def stubborn(event: Event) -> None:
        # Keeps the job in flight, then ignores its cancellation for a while:
        # every stage of a shutdown (the queue, the bus loop, its thread)
        # finds something still running.
        inside.set()
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            await asyncio.to_thread(release.wait, WAIT)
            raise

    bus.subscribe(Demo.PING, slow_sync)
    bus.subscribe(Demo.PING, stubborn)
    try:
        bus.publish_nowait(Event(Demo.PING, {"n": 0}))
        assert inside.wait(WAIT)
        bus.publish_nowait(Event(Demo.PING, {"n": 1}))  # the drainer hangs in it, nothing left queued
        started = time.perf_counter()
        assert bus.shutdown(timeout=1.5) == 0
        elapsed = time.perf_counter() - started
        # One deadline: about 1.5 s. Stage by stage it was 4.5 s.
        assert 1.4 <= elapsed < 3.0
    finally:
        release.set()


def _run_script(body: str, out: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter (the project importable, ``OUT``
    the path of a file it writes to) and let it exit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OUT": str(out)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_a_bus_made_by_hand_delivers_what_it_queued_when_the_interpreter_exits(tmp_path: Path) -> None:
    out = tmp_path / "delivered"
    result = _run_script(
        """
        import os, time
        from blinker_events import Event, EventBus

        out = open(os.environ["OUT"], "a", buffering=1)

        def slow(event):
            time.sleep(0.002)
            out.write(f"{event.data['n']}\\n")

        bus = EventBus()
        bus.subscribe("job", slow)
        for n in range(200):
            bus.publish_nowait(Event("job", {"n": n}))
        # ... and the program ends without shutting the bus down.
        """,
        out,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == [str(n) for n in range(200)]


def test_at_exit_what_cannot_be_delivered_in_the_bound_is_counted_and_logged(tmp_path: Path) -> None:
    out = tmp_path / "outcomes"
    started = time.perf_counter()
    result = _run_script(
        """
        import logging, os, threading
        import blinker_events
        from blinker_events import Event, EventBus

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        blinker_events.ATEXIT_DRAIN_SECONDS = 0.5
        out = open(os.environ["OUT"], "a", buffering=1)
        forever = threading.Event()

        bus = EventBus()
        bus.subscribe("job", lambda event: forever.wait())
        for n in range(3):
            future = bus.publish_nowait(Event("job", {"n": n}))
            future.add_done_callback(lambda f, n=n: out.write(f"{n} {type(f.exception()).__name__}\\n"))
        """,
        out,
        timeout=30,
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 15  # the hung receiver would hold it forever; the bound is 0.5 s
    assert out.read_text().splitlines() == ["1 QueueFullError", "2 QueueFullError"]
    dropped = [line for line in result.stderr.splitlines() if line.startswith("ERROR shutdown: dropped")]
    assert len(dropped) == 2
    assert "'n': 1" in dropped[0]
    assert "'n': 2" in dropped[1]
    assert dropped[0].endswith("still queued after 0.5s")
    # The one in flight is not dropped (it may still end), but it is not silent either.
    running = [line for line in result.stderr.splitlines() if "still being delivered" in line]
    assert len(running) == 1
    assert running[0].startswith(
        "WARNING shutdown: 1 event(s) still being delivered after 0.5s, left running: Event(job,"
    )
    assert "{'n': 0}" in running[0]


@pytest.mark.parametrize(
    ("shutdown_timeout", "outcome"),
    [(5.0, "succeeded"), (0.1, "failed")],
    ids=["receiver-finishes", "loop-stopped-under-it"],
)
def test_shutdown_while_publish_sync_waits_on_the_bus_loop_returns_the_report(
    new_bus: BusFactory, shutdown_timeout: float, outcome: str
) -> None:
    """Used to: ``shutdown()`` stopped the bus loop under a ``publish_sync``
    waiting for its async receivers: the publisher got a
    ``concurrent.futures.CancelledError`` (propagation off), the report was
    neither returned nor recorded, and the receiver was in no list."""
    bus = new_bus()
    started = threading.Event()
    duration = 0.3 if outcome == "succeeded" else 3.0

    async def slow(e: Event) -> None:
        started.set()
        await asyncio.sleep(duration)

    sub = bus.subscribe(Demo.PING, slow)
    event = Event(Demo.PING)
    out: dict[str, Any] = {}

    def publisher() -> None:
        try:
            out["report"] = bus.publish_sync(event)
        except BaseException as exc:
            out["exc"] = exc

    thread = threading.Thread(target=publisher)
    thread.start()
    assert started.wait(2)
    assert bus.shutdown(timeout=shutdown_timeout) == 0
    thread.join(2)

    assert list(out) == ["report"]
    report: DeliveryReport = out["report"]
    if outcome == "succeeded":
        assert report.succeeded == [sub]
        assert list(report.failed) == []
    else:
        assert report.succeeded == []
        assert list(report.cancelled) == [sub]
        assert list(report.failed) == []
    assert report.finished
    assert bus.get_history() == [event]


class Dropping:
    """An outlet that carries nothing and, at its close, reports ``count``
    events dropped (or raises, when ``count`` is an exception)."""

    takes_over = False

    def __init__(self, count: int | Exception | None) -> None:
        self.count = count
        self.closed_with: list[float | None] = []

    def prepare(self, event: Event) -> object | None:
        return None

    def send(self, prepared: object) -> None: ...

    def close(self, timeout: float | None) -> int | None:
        self.closed_with.append(timeout)
        if isinstance(self.count, Exception):
            raise self.count
        return self.count


def test_shutdown_returns_the_queues_drops_plus_what_the_outlets_dropped(bus: EventBus, gate: threading.Event) -> None:
    outlets = [Dropping(3), Dropping(None), Dropping(RuntimeError("cannot close")), Dropping(0), Dropping(2)]
    for outlet in outlets:
        bus.add_outlet(outlet)
    hold_the_worker(bus, gate, first=0)
    for n in (1, 2):
        bus.publish_nowait(Event(Demo.PING, {"n": n}))
    assert bus.shutdown(timeout=0.3) == 2 + 3 + 2  # two queued behind the held one, then the outlets'
    assert all(len(outlet.closed_with) == 1 for outlet in outlets)
    for outlet in outlets:  # the fixture's own shutdown then finds nothing dropped
        bus.remove_outlet(outlet)
