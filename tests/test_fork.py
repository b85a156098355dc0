"""A forked child starts clean: it never runs the parent's in-flight work,
and no lock a parent thread held at the fork is held in the child.

Each test forks for real; the child reports through a pipe and ends with
``os._exit`` (never returning into pytest). The parent bounds its wait for
the report, so a child that deadlocks fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import threading
import warnings
from collections.abc import Callable

import pytest

from blinker_events import Event, EventBus, _interop, _sync
from blinker_events._watchdog import watchdog
from blinker_events.django import _settings as django_settings

from .conftest import Demo, wait_until

WAIT = 5.0

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _in_child(body: Callable[[], object], wait: float = 15.0) -> object:
    """Fork; run ``body`` in the child and return what it returned (as
    JSON), or fail if the child gives no answer within ``wait`` seconds."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # 3.12+ warns that forking a multi-threaded process may deadlock the
        # child: that is exactly what is tested here.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        os.close(read_end)
        code = 0
        try:
            answer = json.dumps({"ok": body()})
        except BaseException as exc:
            answer = json.dumps({"error": repr(exc)})
            code = 1
        finally:
            os.write(write_end, answer.encode())
            os._exit(code)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], wait)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"the forked child gave no answer within {wait}s (deadlocked?)")
        answer = json.loads(os.read(read_end, 1 << 16).decode())
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert "error" not in answer, answer["error"]
    return answer["ok"]


def test_a_forked_child_never_delivers_the_parents_in_flight_job(bus: EventBus) -> None:
    inside = threading.Event()
    release = threading.Event()
    after: list[int] = []

    def hangs(event: Event) -> None:
        if event.data.get("hang"):
            inside.set()
            release.wait(WAIT)

    bus.subscribe(Demo.PING, hangs, timeout=0.3)
    bus.subscribe(Demo.PING, lambda event: after.append(os.getpid()))

    def child() -> object:
        import time

        # The child's own watched publish starts its watchdog, which must
        # not find the parent's run (stuck in ``hangs``) to move on.
        own = bus.publish_sync(Event(Demo.PING)).succeeded
        time.sleep(1.0)  # well past the parent's receiver's 0.3 s deadline
        later = bus.publish_nowait(Event(Demo.PING)).result(WAIT).succeeded
        return {"after": after, "own": len(own), "later": len(later), "me": os.getpid()}

    try:
        future = bus.publish_nowait(Event(Demo.PING, {"hang": True}))
        assert inside.wait(WAIT)
        seen = _in_child(child)
        assert isinstance(seen, dict)
        # In the child, only its own two publishes reached ``after``.
        assert seen["after"] == [seen["me"], seen["me"]]
        assert (seen["own"], seen["later"]) == (2, 2)
        # The parent's job is the parent's: timed out there, and ``after`` ran there.
        report = future.result(WAIT)
        assert len(report.timed_out) == 1
        assert after == [os.getpid()]
    finally:
        release.set()


def test_a_forked_child_forgets_the_async_deliveries_the_parents_loop_had_not_started_without_a_warning(
    bus: EventBus,
) -> None:
    # A queued event's async receivers wait for the bus loop in a list the
    # child forgets; each is a coroutine that, collected unstarted, would
    # warn "coroutine ... was never awaited" in every forked worker.
    inside = threading.Event()
    release = threading.Event()
    ran: list[int] = []

    async def receiver(event: Event) -> None:
        if event.data.get("hang"):
            inside.set()
            release.wait(WAIT)  # holds the bus loop itself: what is posted next waits
        ran.append(event.data["n"])

    bus.subscribe(Demo.PING, receiver)
    try:
        first = bus.publish_nowait(Event(Demo.PING, {"hang": True, "n": 1}))
        assert inside.wait(WAIT)
        second = bus.publish_nowait(Event(Demo.PING, {"n": 2}))
        assert wait_until(lambda: len(bus._loop_thread._posted) == 1)  # posted, not started
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")

            def child() -> object:
                return [str(warning.message) for warning in caught]

            assert _in_child(child) == []
    finally:
        release.set()
    assert [first.result(WAIT).ok, second.result(WAIT).ok] == [True, True]
    assert ran == [1, 2]


def test_a_forked_child_does_not_deadlock_on_locks_parent_threads_held_at_the_fork(bus: EventBus) -> None:
    bus.subscribe(Demo.PING, lambda event: None, timeout=1.0)
    bus.publish_nowait(Event(Demo.PING)).result(WAIT)  # the pool, loop and watchdog exist
    locks = [
        bus._lock,
        *bus._registry.bridges.locks(),
        bus._history._lock,
        bus._queue._put_lock,
        bus._queue._lock,
        bus._pool._lock,
        bus._loop_thread._lock,
        _interop._LOCK,
        _sync._STATE_LOCK,
        watchdog._lock,
        django_settings._lock,
    ]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        for lock in locks:
            lock.acquire()
        held.set()
        release.wait(WAIT)
        for lock in reversed(locks):
            lock.release()

    def child() -> object:
        seen: list[str] = []
        bus.subscribe(Demo.PONG, lambda event: seen.append("sync"), timeout=1.0)

        async def areceiver(event: Event) -> None:
            seen.append("async")

        bus.subscribe(Demo.PONG, areceiver)
        sync = bus.publish_sync(Event(Demo.PONG))
        queued = bus.publish_nowait(Event(Demo.PONG)).result(WAIT)
        return {
            "seen": seen,
            "outcomes": [len(sync.succeeded), len(queued.succeeded)],
            "history": len(bus.get_history(Demo.PONG)),
            "queued": bus.stats()["queued"],
            "dropped": bus.shutdown(timeout=WAIT),
            # Free, as every lock above (the integration's own is not used here).
            "django settings lock": django_settings._lock.acquire(timeout=WAIT),
        }

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(WAIT)
        assert _in_child(child) == {
            "seen": ["sync", "async", "sync", "async"],
            "outcomes": [2, 2],
            "history": 2,
            "queued": 0,
            "dropped": 0,
            "django settings lock": True,
        }
    finally:
        release.set()
        holder.join(WAIT)
