"""The async path: ``await publish``.

Sync receivers never run on the loop (a pool thread, or asgiref's
thread-sensitive executor), and ``publish`` returns only after they finished.
Async receivers run concurrently on the caller's loop, each under its own
timeout and cancelled at it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import logging
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Generator, Iterator
from typing import Any

import blinker
import pytest
from asgiref.sync import markcoroutinefunction, sync_to_async

from blinker_events import DeliveryReport, Event, EventBus, EventTimeoutError, Subscription

from .conftest import HANG, BusFactory, Demo, all_collected, async_wait_until, log_records

CTX: contextvars.ContextVar[str] = contextvars.ContextVar("test_async_path_ctx", default="unset")


@pytest.fixture
def gate(bus: EventBus) -> Iterator[threading.Event]:
    """An event that blocked receivers wait on; set at teardown (before the bus shuts down)."""
    event = threading.Event()
    yield event
    event.set()


@pytest.mark.asyncio
async def test_sync_receiver_never_blocks_the_loop(bus: EventBus) -> None:
    """The sync receiver waits for ticks that only a loop task can produce."""
    ticks = 0
    enough = threading.Event()
    waited: list[bool] = []

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1
            if ticks == 5:
                enough.set()

    def blocking(event: Event) -> None:
        waited.append(enough.wait(timeout=3))
        time.sleep(0.3)

    sub = bus.subscribe(Demo.PING, blocking)
    ticking = asyncio.create_task(ticker())
    try:
        report = await bus.publish(Event(Demo.PING))
        ticks_during = ticks
    finally:
        ticking.cancel()
    assert waited == [True]
    assert report.succeeded == [sub]
    # 0.3 s of sleeping at 10 ms a tick: the loop kept running throughout.
    assert ticks_during >= 10


@pytest.mark.asyncio
async def test_sync_receivers_run_off_the_loop_in_order_and_finish_before_return(bus: EventBus) -> None:
    calls: list[tuple[str, int]] = []

    def make(name: str) -> Callable[[Event], None]:
        def receiver(event: Event) -> None:
            time.sleep(0.02)
            calls.append((name, threading.get_ident()))

        receiver.__qualname__ = name
        return receiver

    subs = [bus.subscribe(Demo.PING, make(name)) for name in ("a", "b", "c")]
    report = await bus.publish(Event(Demo.PING))
    # Visible right after the await: publish waited for them.
    assert [name for name, _ in calls] == ["a", "b", "c"]
    threads = {tid for _, tid in calls}
    assert len(threads) == 1
    assert threading.get_ident() not in threads
    assert report.succeeded == subs
    assert report.finished is True


@pytest.mark.asyncio
async def test_sync_receivers_see_publishers_context(bus: EventBus) -> None:
    seen: list[str] = []
    bus.subscribe(Demo.PING, lambda event: seen.append(CTX.get()))
    CTX.set("publisher")
    await bus.publish(Event(Demo.PING))
    assert seen == ["publisher"]


@pytest.mark.asyncio
async def test_sync_receiver_failure_is_reported(bus: EventBus) -> None:
    boom = ValueError("sync boom")

    def bad(event: Event) -> None:
        raise boom

    after: list[str] = []
    bad_sub = bus.subscribe(Demo.PING, bad)
    ok_sub = bus.subscribe(Demo.PING, lambda event: after.append("ran"))
    report = await bus.publish(Event(Demo.PING))
    assert list(report.failed) == [(bad_sub, boom)]
    assert report.succeeded == [ok_sub]
    assert after == ["ran"]


@pytest.mark.asyncio
async def test_async_receivers_run_concurrently(bus: EventBus) -> None:
    loop = asyncio.get_running_loop()
    loops: list[asyncio.AbstractEventLoop] = []

    async def slow(event: Event) -> None:
        await asyncio.sleep(0.3)
        loops.append(asyncio.get_running_loop())

    subs = [bus.subscribe(Demo.PING, slow, source=n) for n in range(5)]
    assert len(set(subs)) == 5
    started = time.perf_counter()
    report = await bus.publish(Event(Demo.PING))
    elapsed = time.perf_counter() - started
    assert report.succeeded == subs
    assert loops == [loop] * 5
    assert elapsed < 1.0  # one after another would take 1.5 s


@pytest.mark.asyncio
async def test_async_receivers_are_cancelled_at_the_timeout_all_at_once() -> None:
    bus = EventBus(timeout=0.2)
    cancelled: list[int] = []

    def make(n: int) -> Callable[[Event], object]:
        async def hang(event: Event) -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(n)
                raise

        return hang

    try:
        subs = [bus.subscribe(Demo.PING, make(n)) for n in range(5)]
        started = time.perf_counter()
        report = await bus.publish(Event(Demo.PING))
        elapsed = time.perf_counter() - started
        assert elapsed < 1.5  # not 5 x 0.2 s, and certainly not 10 s
        assert list(report.timed_out) == subs
        assert report.succeeded == []
        assert list(report.failed) == []
        assert await async_wait_until(lambda: len(cancelled) == 5, 2.0)
        assert sorted(cancelled) == [0, 1, 2, 3, 4]
        errors = report.errors()
        assert len(errors) == 5
        assert all(type(e) is EventTimeoutError for e in errors)
    finally:
        assert bus.shutdown(timeout=5) == 0


@pytest.mark.asyncio
async def test_mixed_sync_and_async_receivers(bus: EventBus) -> None:
    loop_thread = threading.get_ident()
    where: dict[str, int] = {}

    def s1(event: Event) -> None:
        where["s1"] = threading.get_ident()

    async def a1(event: Event) -> None:
        await asyncio.sleep(0.01)
        where["a1"] = threading.get_ident()

    def s2(event: Event) -> None:
        time.sleep(0.05)
        where["s2"] = threading.get_ident()

    async def a2(event: Event) -> None:
        where["a2"] = threading.get_ident()

    subs = [bus.subscribe(Demo.PING, fn) for fn in (s1, a1, s2, a2)]
    report = await bus.publish(Event(Demo.PING))
    assert sorted(report.succeeded, key=lambda s: s.id) == subs
    assert len(report.succeeded) == 4
    assert where["a1"] == where["a2"] == loop_thread
    assert where["s1"] == where["s2"] != loop_thread


@pytest.mark.asyncio
async def test_per_publish_timeout_overrides_the_default() -> None:
    bus = EventBus(timeout=0.1)
    cancelled: list[str] = []

    async def sleeper(event: Event) -> None:
        try:
            await asyncio.sleep(event.data["sleep"])
        except asyncio.CancelledError:
            cancelled.append(event.data["name"])
            raise

    try:
        sub = bus.subscribe(Demo.PING, sleeper)
        # A longer per-publish timeout lets a 0.3 s receiver finish despite the 0.1 s default.
        longer = await bus.publish(Event(Demo.PING, {"sleep": 0.3, "name": "longer"}), timeout=2)
        assert longer.succeeded == [sub]
        assert list(longer.timed_out) == []
        # Without an override the default applies.
        default = await bus.publish(Event(Demo.PING, {"sleep": 0.3, "name": "default"}))
        assert list(default.timed_out) == [sub]
        # A shorter per-publish timeout cuts a receiver the default would allow.
        bus.set_timeout(5)
        started = time.perf_counter()
        shorter = await bus.publish(Event(Demo.PING, {"sleep": 10, "name": "shorter"}), timeout=0.2)
        assert time.perf_counter() - started < 1.5
        assert list(shorter.timed_out) == [sub]
        assert await async_wait_until(lambda: cancelled == ["default", "shorter"], 2.0)
    finally:
        assert bus.shutdown(timeout=5) == 0


@pytest.mark.asyncio
async def test_thread_sensitive_executor_runs_sync_receivers_on_asgirefs_thread() -> None:
    bus = EventBus(sync_executor="thread_sensitive")
    loop_thread = threading.get_ident()
    calls: list[tuple[str, int]] = []

    def first(event: Event) -> None:
        calls.append(("first", threading.get_ident()))

    def second(event: Event) -> None:
        calls.append(("second", threading.get_ident()))

    try:
        subs = [bus.subscribe(Demo.PING, first), bus.subscribe(Demo.PING, second)]
        asgiref_thread = await sync_to_async(threading.get_ident, thread_sensitive=True)()
        report = await bus.publish(Event(Demo.PING))
        assert report.succeeded == subs
        assert calls == [("first", asgiref_thread), ("second", asgiref_thread)]
        assert asgiref_thread != loop_thread
    finally:
        assert bus.shutdown(timeout=5) == 0


@pytest.mark.asyncio
async def test_publish_without_receivers_returns_an_empty_report(bus: EventBus) -> None:
    event = Event(Demo.PING)
    report = await bus.publish(event)
    assert report.event is event
    assert report.succeeded == []
    assert list(report.failed) == []
    assert list(report.timed_out) == []
    assert list(report.skipped) == []
    assert list(report.scheduled) == []
    assert report.finished is True
    assert report.ok is True


@pytest.mark.asyncio
async def test_async_receiver_failure_does_not_stop_the_others(bus: EventBus) -> None:
    boom = RuntimeError("async boom")

    async def bad(event: Event) -> None:
        raise boom

    async def good(event: Event) -> None:
        await asyncio.sleep(0.01)

    bad_sub = bus.subscribe(Demo.PING, bad)
    good_sub = bus.subscribe(Demo.PING, good)
    report = await bus.publish(Event(Demo.PING))
    assert list(report.failed) == [(bad_sub, boom)]
    assert report.succeeded == [good_sub]


@pytest.mark.asyncio
async def test_hung_sync_receiver_releases_publish_at_timeout(bus: EventBus, gate: threading.Event) -> None:
    after: list[int] = []

    def hang(event: Event) -> None:
        gate.wait(3)

    hung = bus.subscribe(Demo.PING, hang, timeout=0.2)
    nxt: Subscription = bus.subscribe(Demo.PING, lambda event: after.append(threading.get_ident()))
    started = time.perf_counter()
    report = await bus.publish(Event(Demo.PING))
    assert time.perf_counter() - started < 1.5
    assert list(report.timed_out) == [hung]
    assert report.succeeded == [nxt]
    assert len(after) == 1


@pytest.mark.asyncio
async def test_thread_sensitive_hung_receiver_abandons_the_rest_of_the_run() -> None:
    """asgiref's single thread cannot be replaced: the publisher is released at the
    deadline and the receivers behind the hung one are reported as abandoned."""
    bus = EventBus(sync_executor="thread_sensitive")
    release = threading.Event()
    returned = threading.Event()
    after: list[str] = []

    def hang(event: Event) -> None:
        release.wait(3)
        returned.set()

    try:
        hung = bus.subscribe(Demo.PING, hang, timeout=0.2)
        behind = bus.subscribe(Demo.PING, lambda event: after.append("ran"))
        started = time.perf_counter()
        report = await bus.publish(Event(Demo.PING))
        assert time.perf_counter() - started < 1.5
        assert list(report.timed_out) == [hung]
        assert list(report.skipped) == [(behind, "abandoned", None)]
        assert report.succeeded == []
        assert after == []
    finally:
        release.set()
        await asyncio.to_thread(returned.wait, 5)
        assert bus.shutdown(timeout=5) == 0


class _Component:
    """Something an application passes as an event's source and data."""


@pytest.mark.asyncio
async def test_await_publish_with_sync_receivers_leaves_no_event_behind() -> None:
    # With history_size=0 a finished publish must keep nothing: not on the
    # pool threads that ran its sync receivers, idle now.
    bus = EventBus(history_size=0)
    bus.subscribe(Demo.PING, lambda event: None)
    refs: list[weakref.ref[Any]] = []

    async def one() -> None:
        component = _Component()
        refs.append(weakref.ref(component))
        await bus.publish(Event(Demo.PING, {"component": component}, source=component))

    await asyncio.gather(*(one() for _ in range(64)))
    assert all_collected(refs)
    assert bus.shutdown(timeout=10) == 0


def test_a_dropped_bus_that_awaited_publish_is_collected_and_leaves_its_signal() -> None:
    signal = blinker.NamedSignal("test_async_path.dropped")
    calls: list[Event] = []
    bus = EventBus()
    bus.subscribe(bus.bridge(signal), calls.append)
    bus.subscribe(Demo.PING, lambda event: None)
    asyncio.run(bus.publish(Event(Demo.PING)))
    ref = weakref.ref(bus)
    del bus
    assert all_collected([ref])
    assert not signal.receivers
    signal.send("sender")
    assert calls == []


def _publish_sync_in_thread(bus: EventBus, event: Event) -> DeliveryReport | BaseException:
    """``publish_sync`` from a thread without a loop (async receivers go to the
    bus loop); its report, or what it raised. Fails if it does not return."""
    out: list[DeliveryReport | BaseException] = []

    def publisher() -> None:
        try:
            out.append(bus.publish_sync(event))
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=publisher)
    thread.start()
    thread.join(2)
    assert not thread.is_alive(), "publish_sync did not return"
    return out[0]


def test_bus_loop_survives_an_async_receiver_raising_system_exit(new_bus: BusFactory) -> None:
    """Used to: SystemExit raised by an async receiver task escaped the bus
    loop's ``run_forever`` and ended the loop thread, so every later publish
    with async receivers hung or failed."""
    bus = new_bus()
    got: list[Event] = []

    async def exits(e: Event) -> None:
        raise SystemExit(3)

    async def fine(e: Event) -> None:
        got.append(e)

    bus.subscribe(Demo.PING, exits)
    bus.subscribe(Demo.PING, fine)
    good = bus.subscribe(Demo.PONG, fine)

    # What the first publish gives back is checked in the test below; here it
    # only has to come back.
    _publish_sync_in_thread(bus, Event(Demo.PING))

    for _ in range(2):
        later = Event(Demo.PONG)
        report = _publish_sync_in_thread(bus, later)
        assert isinstance(report, DeliveryReport)
        assert report.succeeded == [good]
        assert got[-1] is later


@pytest.mark.skipif(sys.version_info < (3, 12), reason="on 3.11 asyncio raises it out of the loop")
def test_an_interrupt_in_a_receiver_tasks_first_step_reaches_the_publisher_and_cancels_the_tasks_it_started(
    bus: EventBus,
) -> None:
    seen: list[str] = []

    async def started_first(event: Event) -> None:
        try:
            await asyncio.sleep(0.2)
            seen.append("finished")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def interrupts(event: Event) -> None:
        raise KeyboardInterrupt

    bus.subscribe(Demo.PING, started_first)
    bus.subscribe(Demo.PING, interrupts)

    async def main() -> str:
        try:
            await bus.publish(Event(Demo.PING))
        except KeyboardInterrupt:
            outcome = "interrupted"
        else:
            outcome = "returned"
        await asyncio.sleep(0.4)  # past the first receiver's sleep, had it gone on
        return outcome

    assert asyncio.run(main()) == "interrupted"
    assert seen == ["cancelled"]
    assert bus.get_delivery_reports() == []  # a publish the interrupt reached is not recorded


@pytest.mark.parametrize(
    "receivers",
    [
        2,
        1,
    ],
    ids=["with-another-receiver", "single-receiver"],
)
def test_async_receiver_raising_system_exit_on_the_bus_loop_is_a_reported_failure(
    new_bus: BusFactory, receivers: int
) -> None:
    """A BaseException a receiver raises on a bus thread is a reported failure
    (as on pool threads): ``publish_sync`` from a thread without a loop returns
    its report, the other receivers run, and the publish is in history."""
    bus = new_bus()
    got: list[Event] = []

    async def exits(e: Event) -> None:
        raise SystemExit(3)

    async def fine(e: Event) -> None:
        got.append(e)

    bad = bus.subscribe(Demo.PING, exits)
    others = [bus.subscribe(Demo.PING, fine)] if receivers == 2 else []

    event = Event(Demo.PING)
    report = _publish_sync_in_thread(bus, event)
    assert isinstance(report, DeliveryReport), f"publish_sync raised {report!r}"
    assert [(s, type(e)) for s, e in report.failed] == [(bad, SystemExit)]
    assert report.succeeded == others
    assert got == [event] * len(others)
    assert bus.get_history() == [event]


# failure mode 8: await publish and sync receivers
@pytest.mark.asyncio
async def test_await_publish_returns_after_its_sync_receivers_ran(bus: EventBus) -> None:
    """`await publish()` returned before the sync subscribers had run (they were
    queued for later), while `publish_sync` did the opposite: the two paths had
    opposite, undocumented semantics."""
    done: list[str] = []

    def slow_sync(event: Event) -> None:
        time.sleep(0.05)
        done.append("sync-" + event.data["via"])

    async def slow_async(event: Event) -> None:
        await asyncio.sleep(0.05)
        done.append("async-" + event.data["via"])

    subs = {bus.subscribe(Demo.PING, slow_sync), bus.subscribe(Demo.PING, slow_async)}
    report = await bus.publish(Event(Demo.PING, {"via": "await"}))
    assert sorted(done) == ["async-await", "sync-await"]
    assert set(report.succeeded) == subs
    assert report.finished is True

    done.clear()
    report = await asyncio.to_thread(bus.publish_sync, Event(Demo.PING, {"via": "sync"}))
    assert done == ["sync-sync", "async-sync"]
    assert set(report.succeeded) == subs
    assert report.finished is True


# failure mode 10: a brand-new thread per sync callback
@pytest.mark.asyncio
async def test_sync_receivers_run_on_reused_pool_threads(
    bus: EventBus, gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    """Each sync callback ran in a brand-new thread per call just to be joined with a
    timeout: threads leaked, thread-locals and context variables were lost, and
    exceptions raised after the timeout vanished."""
    bus.set_timeout(1.0)
    var: contextvars.ContextVar[str] = contextvars.ContextVar("fm_var", default="unset")
    idents: list[int] = []
    values: list[str] = []

    def receiver(event: Event) -> None:
        idents.append(threading.get_ident())
        values.append(var.get())

    bus.subscribe(Demo.PING, receiver)
    var.set("caller's value")

    # publish_sync: always the caller's own thread
    local = threading.local()

    def inline_50() -> tuple[int, list[Any]]:
        local.value = "thread-local"
        seen = []

        def check_local(event: Event) -> None:
            seen.append(getattr(local, "value", None))

        sub = bus.subscribe(Demo.PONG, check_local)
        for _ in range(50):
            bus.publish_sync(Event(Demo.PING))
            bus.publish_sync(Event(Demo.PONG))
        sub.unsubscribe()
        return threading.get_ident(), seen

    caller, locals_seen = await asyncio.to_thread(contextvars.copy_context().run, inline_50)
    assert idents == [caller] * 50
    assert locals_seen == ["thread-local"] * 50
    assert values == ["caller's value"] * 50

    # await publish: a small set of reused pool threads, context carried
    idents.clear()
    values.clear()
    for _ in range(50):
        assert (await bus.publish(Event(Demo.PING))).ok
    assert len(idents) == 50
    # Reused, not one per call. (A run resolves its publisher just before its
    # thread is back in the pool, so the next publish may now and then find
    # no idle thread and start one: a handful at most, never fifty.)
    assert len(set(idents)) <= 10
    assert threading.get_ident() not in idents
    assert values == ["caller's value"] * 50

    # publish_nowait: the same
    idents.clear()
    futures = [bus.publish_nowait(Event(Demo.PING)) for _ in range(50)]
    for future in futures:
        assert (await asyncio.wrap_future(future)).ok
    assert len(set(idents)) <= 10

    # an exception raised after the timeout is logged, not lost
    def late_failure(event: Event) -> None:
        gate.wait(HANG)
        raise ValueError("raised after the timeout")

    bus.subscribe(Demo.OTHER, late_failure, timeout=0.1)
    report = await bus.publish(Event(Demo.OTHER))
    assert [s.name for s in report.timed_out] == [f"{__name__}.{late_failure.__qualname__}"]
    gate.set()
    assert await async_wait_until(lambda: log_records(caplog, logging.WARNING, "after its timeout"))
    (record,) = log_records(caplog, logging.WARNING, "after its timeout")
    assert "raised" in record.getMessage()
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "raised after the timeout"


# failure mode 11: async receivers awaited one after another
@pytest.mark.asyncio
async def test_async_receivers_cost_one_timeout_not_one_each(bus: EventBus) -> None:
    """Async subscribers were awaited one after another, so worst-case latency was
    (number of subscribers) x timeout."""
    # All five must be inside at once to pass the barrier: serially, the first would time out.
    barrier = asyncio.Barrier(5)

    async def meets_the_others(event: Event) -> None:
        await barrier.wait()

    subs = [bus.subscribe(Demo.PING, functools.partial(meets_the_others)) for _ in range(5)]
    report = await bus.publish(Event(Demo.PING), timeout=2.0)
    assert report.succeeded == subs
    assert list(report.timed_out) == []

    # Ten hung receivers with a 0.3 s timeout: about one timeout, not ten (3 s).
    async def hangs(event: Event) -> None:
        await asyncio.sleep(HANG)

    hung = [bus.subscribe(Demo.PONG, functools.partial(hangs)) for _ in range(10)]
    t0 = time.monotonic()
    report = await bus.publish(Event(Demo.PONG), timeout=0.3)
    assert time.monotonic() - t0 < 1.5
    assert list(report.timed_out) == hung


def _two_yielding_receivers(bus: EventBus) -> list[Subscription]:
    """Two async receivers that suspend once, so each needs its task."""

    async def first(event: Event) -> None:
        await asyncio.sleep(0)

    async def second(event: Event) -> None:
        await asyncio.sleep(0)

    return [bus.subscribe(Demo.PING, first), bus.subscribe(Demo.PING, second)]


async def _publish_with_task_factory(bus: EventBus, factory: Any, event: Event) -> DeliveryReport:
    """``await bus.publish(event)`` with ``factory`` as the running loop's task factory."""
    loop = asyncio.get_running_loop()
    loop.set_task_factory(factory)
    try:
        return await bus.publish(event)
    finally:
        loop.set_task_factory(None)


@pytest.mark.asyncio
async def test_a_loops_task_factory_makes_the_receivers_tasks(bus: EventBus) -> None:
    # Tracing tools install a task factory; the bus's receiver tasks must go
    # through it like any other task on that loop, named after their receivers.
    made: list[asyncio.Task[Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    subs = _two_yielding_receivers(bus)
    report = await _publish_with_task_factory(bus, factory, Event(Demo.PING))
    assert report.succeeded == subs
    assert [task.get_name() for task in made] == [sub.name for sub in subs]


@pytest.mark.asyncio
async def test_a_task_factorys_task_that_runs_on_after_its_receiver_is_awaited_to_its_end(bus: EventBus) -> None:
    # A factory may wrap the coroutine in one of its own that does more work
    # after it (a tracer flushing a span, say): the publish must wait for the
    # task, not only for the receiver inside it, before it reads the outcome.
    wrapped_ended: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        async def runs_on_after() -> Any:
            result = await coro
            await asyncio.sleep(0.05)  # the task is not done for a while after its coroutine returned
            wrapped_ended.append(asyncio.current_task().get_name())  # type: ignore[union-attr]
            return result

        return asyncio.Task(runs_on_after(), loop=loop, **kwargs)

    subs = _two_yielding_receivers(bus)
    report = await _publish_with_task_factory(bus, factory, Event(Demo.PING))
    assert report.succeeded == subs
    assert report.failed == ()
    assert sorted(wrapped_ended) == sorted(sub.name for sub in subs)


def _wrapping_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    async def wrapper() -> Any:
        return await coro

    return asyncio.Task(wrapper(), loop=loop, **kwargs)  # not eager, on any Python


@pytest.mark.parametrize(
    "factory",
    [
        pytest.param(
            None,
            marks=pytest.mark.skipif(sys.version_info >= (3, 12), reason="eager: a receiver task has always started"),
        ),
        pytest.param(_wrapping_factory, id="a-task-factorys"),
    ],
)
@pytest.mark.asyncio
async def test_a_receiver_task_cancelled_before_it_started_is_reported_cancelled_and_closed(
    bus: EventBus, factory: Any
) -> None:
    loop = asyncio.get_running_loop()
    ran: list[str] = []

    async def canceller(event: Event) -> None:
        # Runs first: the other receiver's task exists but has not started.
        for task in asyncio.all_tasks():
            if task.get_name() == later.name:
                task.cancel()

    async def never_started(event: Event) -> None:
        ran.append("started")

    first = bus.subscribe(Demo.PING, canceller)
    later = bus.subscribe(Demo.PING, never_started)
    loop.set_task_factory(factory)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail the test
            report = await bus.publish(Event(Demo.PING))
            gc.collect()
    finally:
        loop.set_task_factory(None)
    assert report.succeeded == [first]
    assert report.cancelled == [later]
    assert ran == []


@pytest.mark.asyncio
async def test_publish_returns_when_its_receivers_end_without_waiting_for_one_unwinding_after_its_timeout(
    bus: EventBus,
) -> None:
    release = asyncio.Event()
    unwinding: list[bool] = []

    async def ignores_its_cancellation(event: Event) -> None:
        try:
            await asyncio.sleep(HANG)
        except asyncio.CancelledError:
            unwinding.append(True)
            await release.wait()  # keeps running long after its timeout

    async def slower_than_that_timeout(event: Event) -> None:
        await asyncio.sleep(0.4)

    stubborn = bus.subscribe(Demo.PING, ignores_its_cancellation, timeout=0.1)
    slow = bus.subscribe(Demo.PING, slower_than_that_timeout, timeout=30)
    try:
        report = await asyncio.wait_for(bus.publish(Event(Demo.PING)), 10)
        assert report.timed_out == [stubborn]
        assert report.succeeded == [slow]
        assert unwinding == [True]  # it was cancelled, and is still unwinding now
    finally:
        release.set()


@pytest.mark.asyncio
async def test_a_task_factory_that_raises_fails_its_receiver_and_the_publish_still_returns(bus: EventBus) -> None:
    loop = asyncio.get_running_loop()
    made: list[str] = []

    def refuses_the_second(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        if made:
            coro.close()
            raise RuntimeError("no more tasks")
        made.append("first")
        return asyncio.Task(coro, loop=loop, **kwargs)

    subs = _two_yielding_receivers(bus)
    loop.set_task_factory(refuses_the_second)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the unstarted receiver is closed, not left to warn
            report = await bus.publish(Event(Demo.PING))  # awaited here: only receivers make tasks
            gc.collect()
    finally:
        loop.set_task_factory(None)
    assert report.succeeded == [subs[0]]
    assert [(sub, str(error)) for sub, error in report.failed] == [(subs[1], "no more tasks")]


class _Steps:
    """An awaitable that is not a coroutine: two bare yields, then a value."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __await__(self) -> Generator[None, None, int]:
        yield
        yield
        self.log.append("awaitable")
        return 7


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["returns", "suspends", "raises", "awaitable"])
async def test_a_single_async_receiver_is_run_to_its_end_however_its_first_step_ends(bus: EventBus, kind: str) -> None:
    # The single receiver runs in the publisher's task, its first step
    # driven by hand: ending in that step (with a value nobody collects, or
    # an exception), suspending on bare yields, or being an awaitable of
    # another kind, each must be recorded as it ended, after all its steps.
    log: list[str] = []

    async def receiver(event: Event) -> int:
        if kind == "raises":
            raise LookupError("first step")
        if kind == "suspends":
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        log.append(kind)
        return 3

    def other(event: Event) -> Any:
        return _Steps(log)

    sub = bus.subscribe(Demo.PING, markcoroutinefunction(other) if kind == "awaitable" else receiver)
    report = await bus.publish(Event(Demo.PING))
    if kind == "raises":
        assert [(s, type(e)) for s, e in report.failed] == [(sub, LookupError)]
        assert log == []
    else:
        assert report.succeeded == [sub]
        assert log == [kind]
    assert report.results is None
