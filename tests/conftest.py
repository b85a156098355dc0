"""Shared fixtures: every test gets its own bus, and nothing outlives it."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from enum import auto
from typing import TYPE_CHECKING, Any

import pytest

from blinker_events import EventBus, EventType

if TYPE_CHECKING:
    import weakref

    from blinker_events.redis.testing import RedisServer

# The Flask integration's tests need the flask extra, the Redis bridge's the
# redis extra (the dev extra has both).
collect_ignore = [] if importlib.util.find_spec("flask") else ["test_flask.py"]
if not importlib.util.find_spec("redis"):
    collect_ignore += ["test_redis_bridge.py", "test_redis_processes.py"]

BusFactory = Callable[..., EventBus]


class Demo(EventType):
    """Event types for the tests (an EventType subclass, as the guide shows)."""

    PING = auto()
    PONG = auto()
    OTHER = auto()


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


async def async_wait_until(predicate: Callable[[], object], timeout: float = 2.0) -> bool:
    """``wait_until`` for a coroutine: polls without blocking the running loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


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
