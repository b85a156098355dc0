"""Shared fixtures: every test gets its own bus, and nothing outlives it.

Also the one bus factory (``new_bus``; ``buses`` for the Redis bridge), the
one ``wait_until``, and the shared gates (``release``, ``gate``,
``hold_the_worker``).

The failure-modes guide (failure-modes-to-rule-out.md), one test per bullet;
each of these tests also carries a ``# failure mode N`` comment:

 1. EventType subclass with auto() cannot extend:
    test_events.py::test_eventtype_subclass_with_auto_defines_members
 2. source tag on a bound method crashed:
    test_subscriptions.py::test_bound_method_subscribes_with_a_source_tag
    test_subscriptions.py::test_bound_builtin_methods_are_identified_like_bound_methods
 3. "all events" missed types defined later:
    test_subscriptions.py::test_catch_all_subscription_covers_types_defined_later
 4. async __call__ object treated as sync:
    test_subscriptions.py::test_object_with_async_call_is_awaited
 5. publish_sync without a loop skipped async:
    test_sync_path.py::test_publish_sync_without_a_running_loop_runs_async_receivers
 6. publish_sync inside a running loop raised:
    test_sync_path.py::test_publish_sync_inside_a_running_loop_delivers
 7. throwaway loop left set on the thread:
    test_sync_path.py::test_publish_sync_leaves_no_event_loop_set_on_the_thread
 8. await publish returned before sync receivers:
    test_async_path.py::test_await_publish_returns_after_its_sync_receivers_ran
 9. "block" overflow froze the event loop:
    test_worker.py::test_block_overflow_in_a_coroutine_does_not_freeze_the_loop
    test_worker.py::test_block_overflow_from_a_plain_thread_waits_for_room
10. a brand-new thread per sync callback:
    test_async_path.py::test_sync_receivers_run_on_reused_pool_threads
11. async receivers awaited one after another:
    test_async_path.py::test_async_receivers_cost_one_timeout_not_one_each
12. hidden test mode switched timeouts off:
    test_timeouts.py::test_timeouts_apply_with_unittest_imported
13. cycle guard only caught the same event object:
    test_cycles.py::test_a_new_event_of_the_receivers_own_type_is_a_cycle
14. same event from two threads: 1 delivery, 2 recs:
    test_concurrency.py::test_same_event_published_from_two_threads_at_once
15. propagation aborted the remaining receivers:
    test_errors.py::test_propagation_runs_the_remaining_receivers_first
16. worker/private loop errors logged or lost:
    test_errors.py::test_errors_on_the_worker_and_the_bus_loop_reach_the_publisher
17. failure counts by id(), never reset, unlocked:
    test_errors.py::test_failure_counts_are_per_subscription_reset_locked_and_whole
18. disable()/enable() while busy stopped worker:
    test_worker.py::test_disable_then_enable_while_the_worker_is_busy_keeps_it_running
19. subscriptions made while disabled dropped:
    test_subscriptions.py::test_subscriptions_made_while_disabled_are_kept
20. queue overflow only logged; shrunk queue leaked:
    test_worker.py::test_queue_overflow_is_reported_and_counted
    test_worker.py::test_a_fresh_bus_has_the_default_queue_size
21. get_history(limit=0) returned everything:
    test_history.py::test_get_history_limit_zero_returns_nothing
22. tests that proved nothing:
    test_timeouts.py::test_module_level_timeout_has_an_exact_outcome
    test_timeouts.py::test_default_bus_shows_no_leftovers_of_other_tests
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from enum import auto
from typing import TYPE_CHECKING, Any

import pytest

from blinker_events import DeliveryReport, Event, EventBus, EventType

if TYPE_CHECKING:
    from blinker_events.redis.testing import RedisServer

# The Flask integration's tests need the flask extra, the Redis bridge's the
# redis extra (dev.py test installs both).
collect_ignore = [] if importlib.util.find_spec("flask") else ["test_flask.py"]
if not importlib.util.find_spec("redis"):
    collect_ignore += ["test_redis_bridge.py", "test_redis_lifecycle.py", "test_redis_processes.py"]

BusFactory = Callable[..., EventBus]

WAIT = 5.0  # upper bound for waits that normally end at once
HANG = 3.0  # how long a "hung" receiver waits before giving up on its gate
REDIS_WAIT = 15.0  # generous: a bound that proves something happened, not a timing


class Demo(EventType):
    """Event types for the tests (an EventType subclass, as the guide shows)."""

    PING = auto()
    PONG = auto()
    OTHER = auto()


class Component:
    """An application object an event carries, for tests that check nothing
    keeps it once a publish is over."""


def event_holding_a_component(event_type: Any = None) -> tuple[Event, weakref.ref[Component]]:
    """An event whose data and source are a fresh :class:`Component`, and a
    weak reference to it: drop the event (and its report), then check
    :func:`all_collected`."""
    component = Component()
    event = Event(Demo.PING if event_type is None else event_type, {"component": component}, component)
    return event, weakref.ref(component)


def all_collected(refs: list[weakref.ref[Any]], timeout: float = 2.0) -> bool:
    """Whether every referent of ``refs`` is collected, giving the bus's
    threads (an idle pool thread, the watchdog's next look) ``timeout``
    seconds to let go of what they held: well below the pool's idle time
    (5 s), after which an ending thread would let go of anything."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        if all(ref() is None for ref in refs):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.fixture
def bus() -> Iterator[EventBus]:
    """A fresh bus; shut down afterwards so no thread or queued event leaks."""
    bus = EventBus()
    yield bus
    assert bus.shutdown(timeout=10) == 0


class _Buses:
    """Buses made with custom settings, all shut down when the test ends."""

    def __init__(self) -> None:
        self.made: list[EventBus] = []

    def __call__(self, **settings: Any) -> EventBus:
        self.made.append(EventBus(**settings))
        return self.made[-1]

    def shutdown(self, *, drained: bool) -> None:
        for made in self.made:
            left = made.shutdown(timeout=10)  # also stops the bridges on it
            if drained:
                assert left == 0


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Hung receivers wait on this; it is set at teardown, before any bus shuts down."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def new_bus(release: threading.Event) -> Iterator[BusFactory]:
    """Make buses with custom settings; ``release`` is set, then every one is
    shut down with nothing left behind."""
    made = _Buses()
    yield made
    release.set()
    made.shutdown(drained=True)


@pytest.fixture
def buses() -> Iterator[BusFactory]:
    """Make buses with custom settings for the Redis bridge's tests; every one
    is shut down after the test (what a bridge could not write may be left)."""
    made = _Buses()
    yield made
    made.shutdown(drained=False)


def wait_until(predicate: Callable[[], object], timeout: float = 2.0) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def wait_for(condition: Callable[[], object], what: str, timeout: float = REDIS_WAIT) -> None:
    """``wait_until`` that fails the test naming ``what`` it waited for (the
    Redis bridge's tests, with their generous bound)."""
    assert wait_until(condition, timeout), f"timed out waiting for {what}"


async def async_wait_until(predicate: Callable[[], object], timeout: float = 2.0) -> bool:
    """``wait_until`` for a coroutine: polls without blocking the running loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Holds "hung" receivers; opened at the end of the test so no thread lingers."""
    event = threading.Event()
    yield event
    event.set()


def hold_the_worker(bus: EventBus, gate: threading.Event, first: int) -> tuple[list[int], Future[DeliveryReport]]:
    """Subscribe a receiver that records each event's ``n`` and waits on
    ``gate`` in the event whose ``n`` is ``first``; queue that event and return
    once the worker holds it: (the receiver's record, the event's future)."""
    seen: list[int] = []
    started = threading.Event()

    def receiver(event: Event) -> None:
        if event.data["n"] == first:
            started.set()
            gate.wait(HANG)
        seen.append(event.data["n"])

    bus.subscribe(Demo.PING, receiver)
    future = bus.publish_nowait(Event(Demo.PING, {"n": first}))
    assert started.wait(WAIT)
    return seen, future


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, server: subprocess.Popen[Any], timeout: float) -> None:
    """Return once ``server`` accepts connections on ``port``; fail the test
    if it exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                pytest.fail(f"the server on port {port} did not start")
            time.sleep(0.05)


def log_records(caplog: pytest.LogCaptureFixture, level: int, needle: str) -> list[logging.LogRecord]:
    """The bus logger's records at ``level`` whose message contains ``needle``."""
    return [r for r in caplog.records if r.name == "blinker_events" and r.levelno == level and needle in r.getMessage()]


def need_redis_server() -> None:
    """Skip a test that needs Debian's redis-server when it is missing --
    except under CI, where a missing server is a broken setup and fails."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install -y redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A throwaway redis-server of the test's own (no persistence), stopped afterwards."""
    need_redis_server()
    from blinker_events.redis.testing import RedisServer

    server = RedisServer()
    server.start()
    yield server
    server.stop()


def pending(redis_server: RedisServer, stream: str = "s", group: str = "g") -> int:
    """How many entries of ``stream`` are pending in ``group``."""
    return int(redis_server.cli("XPENDING", stream, group).split()[0])
