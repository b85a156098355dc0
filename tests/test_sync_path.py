"""The sync path: ``publish_sync``.

Sync receivers run inline in the caller's thread, in subscription order, with
the caller's context variables and thread-locals. Async receivers run to
completion before it returns: on the bus's one long-lived loop thread when the
caller has no loop, on the outer loop inside ``sync_to_async``, and -- when the
caller itself runs a loop -- as tracked tasks on that loop (reported as
scheduled until they end).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from blinker_events import Event, EventBus, Subscription

from .conftest import WAIT, Demo, async_wait_until

CTX: contextvars.ContextVar[str] = contextvars.ContextVar("test_sync_path_ctx", default="unset")


def _only(bus: EventBus, predicate: Callable[[Subscription], bool]) -> Subscription:
    """The single subscription of Demo.PING matching ``predicate``."""
    matches = [s for s in bus.get_subscriptions(Demo.PING) if predicate(s)]
    assert len(matches) == 1
    return matches[0]


def _thread_loop() -> Any:
    """The event loop set (not running) on the calling thread, read without creating one."""
    return getattr(asyncio.get_event_loop_policy()._local, "_loop", None)  # type: ignore[attr-defined]


@pytest.fixture
def loops_created() -> Iterator[list[asyncio.AbstractEventLoop]]:
    """Every event loop the asyncio policy creates while the test runs (instrumentation only)."""
    policy = asyncio.get_event_loop_policy()
    original = policy.new_event_loop
    created: list[asyncio.AbstractEventLoop] = []

    def counting() -> asyncio.AbstractEventLoop:
        loop = original()
        created.append(loop)
        return loop

    policy.new_event_loop = counting  # type: ignore[method-assign]
    try:
        yield created
    finally:
        del policy.new_event_loop


# -- sync receivers: inline, in order ----------------------------------------


def test_sync_receivers_run_inline_in_subscription_order(bus: EventBus) -> None:
    calls: list[tuple[str, int]] = []

    def first(event: Event) -> None:
        calls.append(("first", threading.get_ident()))

    def plain(sender: Any, *, event: Event) -> None:
        calls.append(("plain", threading.get_ident()))

    def third(event: Event) -> None:
        calls.append(("third", threading.get_ident()))

    sub1 = bus.subscribe(Demo.PING, first)
    bus.signal_for(Demo.PING).connect(plain)
    sub3 = bus.subscribe(Demo.PING, third)
    plain_sub = _only(bus, lambda s: s.plain)

    report = bus.publish_sync(Event(Demo.PING, {"n": 1}, "src"))

    me = threading.get_ident()
    assert calls == [("first", me), ("plain", me), ("third", me)]
    assert report.succeeded == [sub1, plain_sub, sub3]
    assert plain_sub.plain is True
    assert plain_sub.callback is plain


def test_plain_blinker_receiver_gets_source_and_event_keyword(bus: EventBus) -> None:
    received: list[tuple[Any, Event]] = []

    def plain(sender: Any, **kwargs: Any) -> None:
        received.append((sender, kwargs["event"]))

    bus.signal_for(Demo.PING).connect(plain)
    source = object()
    event = Event(Demo.PING, {"x": 1}, source)
    report = bus.publish_sync(event)
    assert len(received) == 1
    assert received[0][0] is source
    assert received[0][1] is event
    assert [s.callback for s in report.succeeded] == [plain]


def test_plain_blinker_async_receiver_runs_to_completion(bus: EventBus) -> None:
    received: list[tuple[Any, Event]] = []

    async def plain_async(sender: Any, *, event: Event) -> None:
        await asyncio.sleep(0.01)
        received.append((sender, event))

    bus.signal_for(Demo.PING).connect(plain_async)
    adapter = _only(bus, lambda s: s.plain)
    event = Event(Demo.PING, None, "the-source")
    report = bus.publish_sync(event)
    assert received == [("the-source", event)]
    assert report.succeeded == [adapter]
    assert adapter.is_async is True


def test_sync_receivers_see_callers_context_variables_and_thread_locals(bus: EventBus) -> None:
    local = threading.local()
    local.value = "caller-local"
    seen: list[tuple[str, str]] = []

    def receiver(event: Event) -> None:
        seen.append((CTX.get(), getattr(local, "value", "missing")))

    bus.subscribe(Demo.PING, receiver)
    token = CTX.set("caller-ctx")
    try:
        bus.publish_sync(Event(Demo.PING))
    finally:
        CTX.reset(token)
    assert seen == [("caller-ctx", "caller-local")]


def test_report_content_is_exact(bus: EventBus) -> None:
    boom = ValueError("boom")

    def ok(event: Event) -> None:
        pass

    def bad(event: Event) -> None:
        raise boom

    def ok_too(event: Event) -> None:
        pass

    async def async_ok(event: Event) -> None:
        await asyncio.sleep(0)

    s_ok = bus.subscribe(Demo.PING, ok)
    s_async = bus.subscribe(Demo.PING, async_ok)
    s_bad = bus.subscribe(Demo.PING, bad)
    s_ok2 = bus.subscribe(Demo.PING, ok_too)
    event = Event(Demo.PING)

    report = bus.publish_sync(event)

    assert report.event is event
    # All sync receivers inline first, then the async ones.
    assert report.succeeded == [s_ok, s_ok2, s_async]
    assert list(report.failed) == [(s_bad, boom)]
    assert report.failed[0][1] is boom
    assert list(report.timed_out) == []
    assert list(report.skipped) == []
    assert list(report.scheduled) == []
    assert list(report.disabled) == []
    assert report.finished is True
    assert report.ok is False
    assert report.errors() == [boom]
    assert report.duration > 0


def test_sync_receivers_run_before_async_ones(bus: EventBus) -> None:
    order: list[str] = []

    def s1(event: Event) -> None:
        order.append("s1")

    async def a1(event: Event) -> None:
        order.append("a1")

    def s2(event: Event) -> None:
        order.append("s2")

    async def a2(event: Event) -> None:
        order.append("a2")

    bus.subscribe(Demo.PING, s1)
    bus.subscribe(Demo.PING, a1)
    bus.subscribe(Demo.PING, s2)
    bus.subscribe(Demo.PING, a2)
    bus.publish_sync(Event(Demo.PING))
    assert order == ["s1", "s2", "a1", "a2"]


# -- async receivers from a thread without a loop -----------------------------


def test_async_receivers_from_main_thread_run_on_one_long_lived_bus_loop(
    bus: EventBus, loops_created: list[asyncio.AbstractEventLoop]
) -> None:
    assert threading.current_thread() is threading.main_thread()
    assert asyncio._get_running_loop() is None
    set_before = _thread_loop()
    seen: list[tuple[int, int, str]] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def receiver(event: Event) -> None:
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        loops.append(loop)
        seen.append((id(loop), threading.get_ident(), CTX.get()))

    sub = bus.subscribe(Demo.PING, receiver)
    reports = []
    token = CTX.set("main-ctx")
    try:
        for n in range(3):
            reports.append(bus.publish_sync(Event(Demo.PING, {"n": n})))
            # Finished before publish_sync returned.
            assert len(seen) == n + 1
    finally:
        CTX.reset(token)

    assert [r.succeeded for r in reports] == [[sub], [sub], [sub]]
    assert all(r.finished for r in reports)
    assert len({loop_id for loop_id, _, _ in seen}) == 1
    assert len({tid for _, tid, _ in seen}) == 1
    assert seen[0][1] != threading.get_ident()
    assert [ctx for _, _, ctx in seen] == ["main-ctx"] * 3
    # Exactly one loop made (the bus loop), still open: no throwaway loop per call.
    assert loops_created == [loops[0]]
    assert loops[0].is_closed() is False
    # The caller's thread: no running loop, and its set loop untouched.
    assert asyncio._get_running_loop() is None
    assert _thread_loop() is set_before


def test_publish_sync_from_plain_thread_leaves_no_loop_set_on_it(bus: EventBus) -> None:
    outcome: dict[str, Any] = {}

    async def receiver(event: Event) -> None:
        await asyncio.sleep(0)

    sub = bus.subscribe(Demo.PING, receiver)

    def in_thread() -> None:
        outcome["report"] = bus.publish_sync(Event(Demo.PING))
        outcome["running"] = asyncio._get_running_loop()
        try:
            asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError as exc:
            outcome["get_event_loop"] = exc
        else:  # pragma: no cover - only on failure
            outcome["get_event_loop"] = None

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(5)
    assert outcome["report"].succeeded == [sub]
    assert outcome["running"] is None
    # Neither a live nor a closed loop was left set on the thread.
    assert isinstance(outcome["get_event_loop"], RuntimeError)
    assert "no current event loop" in str(outcome["get_event_loop"])


def test_async_receiver_failure_from_sync_caller_is_reported(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    boom = RuntimeError("async boom")

    async def bad(event: Event) -> None:
        await asyncio.sleep(0)
        raise boom

    sub = bus.subscribe(Demo.PING, bad)
    with caplog.at_level(logging.ERROR, logger="blinker_events"):
        report = bus.publish_sync(Event(Demo.PING))
    assert list(report.failed) == [(sub, boom)]
    assert report.succeeded == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "blinker_events"]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert errors[0].exc_info[1] is boom


# -- inside sync_to_async: the outer loop --------------------------------------


@pytest.mark.parametrize("thread_sensitive", [True, False])
@pytest.mark.asyncio
async def test_inside_sync_to_async_async_receivers_run_on_the_outer_loop(
    bus: EventBus, thread_sensitive: bool
) -> None:
    outer = asyncio.get_running_loop()
    # A loop-bound resource of the outer loop: awaiting it from any other loop fails.
    ready: asyncio.Future[str] = outer.create_future()
    outer.call_later(0.05, ready.set_result, "ready")
    seen: list[tuple[asyncio.AbstractEventLoop, int, str, str]] = []
    sync_threads: list[int] = []

    async def receiver(event: Event) -> None:
        value = await ready
        seen.append((asyncio.get_running_loop(), threading.get_ident(), value, CTX.get()))

    def sync_receiver(event: Event) -> None:
        sync_threads.append(threading.get_ident())

    sub = bus.subscribe(Demo.PING, receiver)
    sync_sub = bus.subscribe(Demo.PING, sync_receiver)
    caller_threads: list[int] = []

    def call() -> Any:
        caller_threads.append(threading.get_ident())
        return bus.publish_sync(Event(Demo.PING))

    CTX.set("outer-ctx")
    report = await sync_to_async(call, thread_sensitive=thread_sensitive)()

    assert list(report.failed) == []
    assert report.succeeded == [sync_sub, sub]
    assert report.finished is True
    assert seen == [(outer, threading.get_ident(), "ready", "outer-ctx")]
    assert sync_threads == caller_threads
    assert caller_threads[0] != threading.get_ident()


@pytest.mark.asyncio
async def test_inside_sync_to_async_lock_of_outer_loop_works_in_receiver(bus: EventBus) -> None:
    lock = asyncio.Lock()
    order: list[str] = []

    async def receiver(event: Event) -> None:
        async with lock:  # contended: needs the loop the lock's waiters live on
            order.append("receiver")

    async def holder() -> None:
        async with lock:
            order.append("holder")
            await asyncio.sleep(0.05)

    async def waiter() -> None:
        async with lock:  # contends first, which binds the lock to this loop
            order.append("waiter")

    sub = bus.subscribe(Demo.PING, receiver)
    holding = asyncio.create_task(holder())
    await asyncio.sleep(0)  # holder owns the lock now
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0)  # waiter is queued on the lock
    report = await sync_to_async(bus.publish_sync)(Event(Demo.PING))
    await asyncio.gather(holding, waiting)
    assert list(report.failed) == []
    assert order == ["holder", "waiter", "receiver"]
    assert report.succeeded == [sub]


@pytest.mark.asyncio
async def test_inside_sync_to_async_receiver_can_hop_back_to_the_calling_thread(bus: EventBus) -> None:
    """The Django pattern: an async receiver calls thread-sensitive sync code
    (the ORM) while ``publish_sync`` runs in a ``sync_to_async`` thread. It
    must run on that very thread, without deadlock."""
    hopped: list[int] = []

    async def receiver(event: Event) -> None:
        hopped.append(await sync_to_async(threading.get_ident, thread_sensitive=True)())

    sub = bus.subscribe(Demo.PING, receiver)
    callers: list[int] = []

    def call() -> Any:
        callers.append(threading.get_ident())
        return bus.publish_sync(Event(Demo.PING))

    report = await asyncio.wait_for(sync_to_async(call, thread_sensitive=True)(), 5)
    assert report.succeeded == [sub]
    assert hopped == callers


# -- called from inside a running loop ----------------------------------------


@pytest.mark.asyncio
async def test_publish_sync_inside_running_loop_schedules_async_receivers(bus: EventBus) -> None:
    loop = asyncio.get_running_loop()
    ran: list[tuple[str, Any]] = []

    async def areceiver(event: Event) -> None:
        await asyncio.sleep(0.01)
        ran.append(("async", asyncio.get_running_loop()))

    def sreceiver(event: Event) -> None:
        ran.append(("sync", threading.get_ident()))

    a_sub = bus.subscribe(Demo.PING, areceiver)
    s_sub = bus.subscribe(Demo.PING, sreceiver)

    # Must not raise "You cannot use AsyncToSync in the same thread as an async
    # event loop" nor "Cannot run the event loop while another loop is running".
    report = bus.publish_sync(Event(Demo.PING))

    assert ran == [("sync", threading.get_ident())]
    assert list(report.scheduled) == [a_sub]
    assert report.finished is False
    assert report.succeeded == [s_sub]
    gc.collect()  # the bus keeps the task alive
    assert await async_wait_until(lambda: report.finished, 2.0)
    assert ran == [("sync", threading.get_ident()), ("async", loop)]
    assert report.succeeded == [s_sub, a_sub]
    assert list(report.scheduled) == []
    assert list(report.failed) == []


@pytest.mark.asyncio
async def test_failing_scheduled_receiver_is_reported_and_logged(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    boom = KeyError("scheduled boom")

    async def bad(event: Event) -> None:
        await asyncio.sleep(0.01)
        raise boom

    sub = bus.subscribe(Demo.PING, bad)
    with caplog.at_level(logging.ERROR, logger="blinker_events"):
        report = bus.publish_sync(Event(Demo.PING))
        assert list(report.scheduled) == [sub]
        assert list(report.failed) == []
        assert await async_wait_until(lambda: report.finished, 2.0)
    assert list(report.failed) == [(sub, boom)]
    assert report.succeeded == []
    assert report.errors() == [boom]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "blinker_events"]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert errors[0].exc_info[1] is boom
    assert "bad" in errors[0].getMessage()


@pytest.mark.asyncio
async def test_scheduled_receiver_is_cancelled_at_its_timeout(bus: EventBus) -> None:
    cancelled: list[str] = []

    async def hang(event: Event) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append("hang")
            raise

    sub = bus.subscribe(Demo.PING, hang)
    report = bus.publish_sync(Event(Demo.PING), timeout=0.1)
    assert list(report.scheduled) == [sub]
    assert await async_wait_until(lambda: report.finished and cancelled == ["hang"], 2.0)
    assert list(report.timed_out) == [sub]
    assert report.succeeded == []
    assert list(report.failed) == []


# failure mode 5: publish_sync with no running loop
def test_publish_sync_without_a_running_loop_runs_async_receivers(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    """`publish_sync` from the main thread with no running loop did not run async
    subscribers at all (it logged an error per subscriber, each error counting
    toward auto-disable)."""
    assert threading.current_thread() is threading.main_thread()
    ran: list[str] = []

    async def async_receiver(event: Event) -> None:
        await asyncio.sleep(0.01)
        ran.append("async")

    sub = bus.subscribe(Demo.PING, async_receiver)
    for _ in range(5):
        report = bus.publish_sync(Event(Demo.PING))
        assert report.succeeded == [sub]
        assert report.finished is True
    assert ran == ["async"] * 5
    assert sub.failures == 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# failure mode 6: publish_sync inside a running loop
@pytest.mark.asyncio
async def test_publish_sync_inside_a_running_loop_delivers(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    """`publish_sync` inside a running loop failed with "Cannot run the event loop
    while another loop is running" / asgiref's "You cannot use AsyncToSync in the
    same thread as an async event loop"."""
    loop = asyncio.get_running_loop()
    where: dict[str, Any] = {}

    def sync_receiver(event: Event) -> None:
        where["sync"] = threading.get_ident()

    async def async_receiver(event: Event) -> None:
        await asyncio.sleep(0.01)
        where["async"] = asyncio.get_running_loop()

    sync_sub = bus.subscribe(Demo.PING, sync_receiver)
    async_sub = bus.subscribe(Demo.PING, async_receiver)

    report = bus.publish_sync(Event(Demo.PING))
    # sync receivers ran inline; async ones are tracked tasks on this loop
    assert where == {"sync": threading.get_ident()}
    assert report.succeeded == [sync_sub]
    assert list(report.scheduled) == [async_sub]
    assert report.finished is False
    assert await async_wait_until(lambda: report.finished)
    assert report.succeeded == [sync_sub, async_sub]
    assert where["async"] is loop

    # inside sync_to_async (the asgiref case), async receivers run to completion on this loop
    where.clear()
    report = await sync_to_async(bus.publish_sync)(Event(Demo.PING))
    assert report.finished is True
    assert report.succeeded == [sync_sub, async_sub]
    assert where["async"] is loop
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# failure mode 7: a throwaway event loop left set
def test_publish_sync_leaves_no_event_loop_set_on_the_thread(bus: EventBus) -> None:
    """A throwaway event loop was created per call, then closed and left set as the
    thread's current loop."""
    loops: list[asyncio.AbstractEventLoop] = []
    outcome: dict[str, Any] = {}

    async def async_receiver(event: Event) -> None:
        loops.append(asyncio.get_running_loop())

    bus.subscribe(Demo.PING, async_receiver)

    def in_fresh_thread() -> None:
        policy = asyncio.events.get_event_loop_policy()
        outcome["before"] = policy._local._loop  # type: ignore[attr-defined]
        for _ in range(3):
            bus.publish_sync(Event(Demo.PING))
        outcome["after"] = policy._local._loop  # type: ignore[attr-defined]

    thread = threading.Thread(target=in_fresh_thread)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert outcome == {"before": None, "after": None}
    assert len(loops) == 3
    assert loops[0] is loops[1] is loops[2]  # the one bus loop, reused
    assert loops[0].is_closed() is False
    assert loops[0].is_running() is True
    # the main thread is untouched too
    bus.publish_sync(Event(Demo.PING))
    assert loops[3] is loops[0]
