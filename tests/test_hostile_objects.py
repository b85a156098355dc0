"""Nothing an event, a receiver or its exception does can break the bus.

Events carry the application's objects: a detached ORM instance whose
``__repr__`` raises, a ``__str__`` that raises, even a ``__repr__`` raising
``SystemExit``. Receivers raise exceptions that cannot be printed. None of it
may kill the watchdog (every later timeout in the process would be lost),
hang ``await publish``, or break error isolation on any path. And if the
watchdog thread dies anyway, the next dispatch notices and starts a new one.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from blinker_events import Event, EventBus, SystemEventType
from blinker_events._watchdog import watchdog

from .conftest import Demo, wait_until


class Detached:
    """Like an ORM instance whose session is gone: it cannot be shown."""

    def __repr__(self) -> str:
        raise RuntimeError("instance is not bound to a session")

    def __str__(self) -> str:
        raise RuntimeError("instance is not bound to a session")


class Fatal:
    """A ``__repr__`` raising what silently ends a thread -- on the bus's
    threads; on the main thread (pytest's, which reports failures with
    reprs) a plain error."""

    def __repr__(self) -> str:
        if threading.current_thread() is threading.main_thread():
            raise RuntimeError("repr")
        raise SystemExit("repr")


class Unprintable(Exception):
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")


HOSTILE_EVENTS: dict[str, Callable[..., Event]] = {
    "data": lambda kind=Demo.PING: Event(kind, {"user": Detached()}),
    "source": lambda kind=Demo.PING: Event(kind, {"n": 1}, Detached()),
    "fatal-data": lambda kind=Demo.PING: Event(kind, {"user": Fatal()}),
    "fatal-source": lambda kind=Demo.PING: Event(kind, None, Fatal()),
}


def _watchdog_alive() -> bool:
    thread = watchdog._thread
    return thread is not None and thread.is_alive()


def _timed_out_on_a_pool_thread(bus: EventBus, event: Event) -> None:
    """Publish ``event`` through the worker to the hung receiver: the
    watchdog must release it at its timeout."""
    started = time.monotonic()
    report = bus.publish_nowait(event).result(timeout=5)
    assert time.monotonic() - started < 5
    assert [s.name for s in report.timed_out] == [bus.get_subscriptions()[0].name]


@pytest.mark.parametrize("kind", list(HOSTILE_EVENTS))
def test_watchdog_survives_overruns_handling_hostile_events(
    bus: EventBus, gate: threading.Event, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    bus.set_timeout(0.2)
    bus.set_failure_threshold(100)
    slow = bus.subscribe(Demo.OTHER, lambda event: time.sleep(0.5))
    # An inline overrun, warned about by the watchdog while it lasts...
    report = bus.publish_sync(HOSTILE_EVENTS[kind](Demo.OTHER))
    assert list(report.timed_out) == [slow]
    assert "overran its timeout" in caplog.text  # logged for the hostile event itself
    slow.unsubscribe()
    bus.subscribe(Demo.PING, lambda event: gate.wait(10))
    # ... and overruns on pool threads, each released by the watchdog.
    for _ in range(2):
        _timed_out_on_a_pool_thread(bus, HOSTILE_EVENTS[kind]())
    _timed_out_on_a_pool_thread(bus, Event(Demo.PING))
    assert _watchdog_alive()
    assert "overran its timeout" in caplog.text


def test_publish_paths_isolate_failures_of_hostile_events_and_exceptions() -> None:
    bus = EventBus(failure_threshold=2)
    try:
        calls: list[str] = []

        def unprintable(event: Event) -> None:
            calls.append("unprintable")
            raise Unprintable

        async def async_unprintable(event: Event) -> None:
            await asyncio.sleep(0)
            calls.append("async")
            raise Unprintable

        failing = bus.subscribe(Demo.PING, unprintable)
        async_failing = bus.subscribe(Demo.PING, async_unprintable)
        healthy = bus.subscribe(Demo.PING, lambda event: calls.append("healthy"))
        announced: list[dict[str, Any]] = []
        bus.subscribe(SystemEventType.SUBSCRIBER_DISABLED, lambda event: announced.append(dict(event.data)))

        first = bus.publish_sync(HOSTILE_EVENTS["data"]())
        second = asyncio.run(asyncio.wait_for(bus.publish(HOSTILE_EVENTS["source"]()), 5))
        third = bus.publish_nowait(HOSTILE_EVENTS["data"]()).result(timeout=5)
        assert calls.count("healthy") == 3
        assert (calls.count("unprintable"), calls.count("async")) == (2, 2)  # disabled after two
        for report in (first, second):
            assert report.succeeded == [healthy]
            assert sorted(s.id for s, _ in report.failed) == sorted([failing.id, async_failing.id])
        assert sorted(s.id for s in second.disabled) == sorted([failing.id, async_failing.id])
        assert sorted(a["subscription_id"] for a in announced) == sorted([failing.id, async_failing.id])
        assert [a["error"].startswith("<Unprintable ") for a in announced] == [True, True]
        assert third.succeeded == [healthy]
        assert sorted(reason for _, reason, _ in third.skipped) == ["disabled", "disabled"]
        assert "2 failed" in repr(second)
    finally:
        bus.shutdown(timeout=5)


def test_await_publish_of_a_hostile_event_times_out_and_returns(bus: EventBus, gate: threading.Event) -> None:
    bus.set_timeout(0.2)

    async def hangs(event: Event) -> None:
        await asyncio.sleep(60)

    async def raises(event: Event) -> None:
        raise Unprintable

    for subs in ([hangs], [hangs, raises, lambda event: gate.wait(10)]):
        for sub in bus.get_subscriptions():
            sub.unsubscribe()
        for fn in subs:
            bus.subscribe(Demo.PING, fn)
        for make in HOSTILE_EVENTS.values():
            started = time.monotonic()
            report = asyncio.run(asyncio.wait_for(bus.publish(make()), 10))
            assert time.monotonic() - started < 5
            assert len(report.timed_out) == len(subs) - (1 if len(subs) > 1 else 0)
            assert len(report.failed) == (1 if len(subs) > 1 else 0)
            for sub in bus.get_subscriptions():
                sub.enable()


def _kill(thread: threading.Thread) -> None:
    """End ``thread`` the way an unexpected error would: an exception raised
    in it, from outside (CPython's async-exception API). The watchdog
    survives an exception that lands while it handles one deadline -- that
    is its robustness -- so the exception is raised again until one lands
    outside and the thread ends."""
    assert thread.ident is not None
    deadline = time.monotonic() + 5
    while thread.is_alive() and time.monotonic() < deadline:
        if _in_watch_loop(thread.ident):  # not once it has left it: the exception is being reported
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
        thread.join(0.05)


def _in_watch_loop(ident: int) -> bool:
    frame = sys._current_frames().get(ident)
    while frame is not None:
        if frame.f_code.co_name == "_watch" and frame.f_code.co_filename.endswith("_watchdog.py"):
            return True
        frame = frame.f_back
    return False


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the killed thread's
@pytest.mark.parametrize("path", ["pool", "awaited", "inline"])
def test_a_dead_watchdog_is_noticed_and_restarted(
    bus: EventBus, gate: threading.Event, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="blinker_events")
    bus.set_timeout(0.2)
    watchdog.slot()  # it runs
    dead = watchdog._thread
    assert dead is not None
    assert wait_until(lambda: not watchdog.awaited and all(s.current is None for s in list(watchdog._slots)), 5.0)
    _kill(dead)
    dead.join(5)
    assert not dead.is_alive()
    if path == "pool":
        bus.subscribe(Demo.PING, lambda event: gate.wait(10))
        _timed_out_on_a_pool_thread(bus, Event(Demo.PING))
    elif path == "inline":
        # The calling thread already has its slot: only the dispatch loop can notice.
        sub = bus.subscribe(Demo.PING, lambda event: time.sleep(1))
        assert list(bus.publish_sync(Event(Demo.PING)).timed_out) == [sub]
        assert "(inline; it cannot be stopped)" in caplog.text  # the new watchdog's warning
    else:

        async def hangs(event: Event) -> None:
            await asyncio.sleep(60)

        sub = bus.subscribe(Demo.PING, hangs)
        started = time.monotonic()
        report = asyncio.run(asyncio.wait_for(bus.publish(Event(Demo.PING)), 10))
        assert time.monotonic() - started < 5
        assert list(report.timed_out) == [sub]
    assert _watchdog_alive()
    assert watchdog._thread is not dead
    assert "watchdog thread had stopped" in caplog.text


def test_log_lines_the_bus_formats_are_cut_and_keep_the_exception(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    # A megabyte event type name, receiver name and exception message: each
    # message the bus formats stays short; the exception rides along whole
    # as exc_info, for error trackers, and its formatting is the handler's.
    long_type = "t" * 10**6
    error = ValueError("v" * 10**6)

    def fail(event: Event) -> None:
        raise error

    fail.__qualname__ = "q" * 10**6
    sub = bus.subscribe(long_type, fail, timeout=0.05)
    assert len(sub.name) <= 300
    assert len(repr(sub)) < 1000
    with caplog.at_level(logging.DEBUG, logger="blinker_events"):
        report = bus.publish_sync(Event(long_type, {"k": "d" * 10**6}, source="s" * 10**6))
    assert list(report.failed) == [(sub, error)]
    assert report.event.event_type == long_type  # the name itself stays whole
    assert caplog.records
    assert max(len(record.getMessage()) for record in caplog.records) < 2000
    [failure] = [record for record in caplog.records if record.exc_info]
    assert failure.exc_info is not None
    assert failure.exc_info[1] is error
