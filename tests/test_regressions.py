"""Regression tests for the defects a review found by repro (fixed in 86d1906).

One test per defect; each docstring says what used to go wrong. Hung
receivers wait on a ``threading.Event`` that is set before the bus shuts
down, so no thread outlives its test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import itertools
import logging
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from blinker import NamedSignal

from blinker_events import DeliveryReport, Event, EventBus, SystemEventType

from .conftest import Demo

LOGGER = "blinker_events"
_names = itertools.count()

BusFactory = Callable[..., EventBus]


@pytest.fixture
def release() -> threading.Event:
    """Hung receivers wait on this; ``new_bus`` sets it before shutting its buses down."""
    return threading.Event()


@pytest.fixture
def new_bus(release: threading.Event) -> Iterator[BusFactory]:
    """Make buses with custom settings; all are released and shut down after the test."""
    made: list[EventBus] = []

    def make(**kwargs: Any) -> EventBus:
        made.append(EventBus(**kwargs))
        return made[-1]

    yield make
    release.set()
    for bus in made:
        assert bus.shutdown(timeout=10) == 0


def _signal() -> NamedSignal:
    """A blinker signal the bus does not own (not in blinker's namespace either)."""
    return NamedSignal(f"foreign-{next(_names)}")


def _outcomes(report: DeliveryReport) -> dict[str, list[int]]:
    """The report's lists as subscription ids, for exact comparison."""
    return {
        "succeeded": [s.id for s in report.succeeded],
        "failed": [s.id for s, _ in report.failed],
        "timed_out": [s.id for s in report.timed_out],
        "skipped": [s.id for s, _, _ in report.skipped],
    }


def _wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.01)
    return True


async def _async_wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


# -- the pool and the worker queue ------------------------------------------------


@pytest.mark.asyncio
async def test_burst_of_publishes_to_a_hung_sync_receiver_does_not_stall_other_publishers(
    new_bus: BusFactory, release: threading.Event
) -> None:
    """Used to: 70 concurrent ``await publish`` to a hung receiver left 64 pool
    threads stuck (the pool's cap), and every later publish needing a thread --
    even of an unrelated event -- waited far beyond any timeout."""
    bus = new_bus(timeout=0.2, failure_threshold=1000)
    hung = bus.subscribe(Demo.PING, lambda e: release.wait(10))
    pongs: list[Event] = []
    other = bus.subscribe(Demo.PONG, pongs.append)

    started = time.perf_counter()
    tasks = [asyncio.ensure_future(bus.publish(Event(Demo.PING))) for _ in range(70)]
    done, pending = await asyncio.wait(tasks, timeout=2)
    assert (len(done), len(pending)) == (70, 0)
    assert time.perf_counter() - started < 2
    assert [_outcomes(t.result()) for t in tasks] == [
        {"succeeded": [], "failed": [], "timed_out": [hung.id], "skipped": []}
    ] * 70

    unrelated = await asyncio.wait_for(bus.publish(Event(Demo.PONG)), 1.5)
    assert unrelated.succeeded == [other]
    queued = await asyncio.wait_for(asyncio.wrap_future(bus.publish_nowait(Event(Demo.PONG))), 1.5)
    assert queued.succeeded == [other]
    assert len(pongs) == 2


def test_run_moved_off_a_hung_receiver_keeps_the_async_receivers_met_before(
    new_bus: BusFactory, release: threading.Event
) -> None:
    """Used to: when the watchdog moved a ``publish_nowait`` run off a hung sync
    receiver, the async receivers collected before it were dropped: never
    called, and missing from the report."""
    bus = new_bus(timeout=0.2)
    called: list[str] = []

    async def early(e: Event) -> None:
        called.append("early-async")

    def late(e: Event) -> None:
        called.append("late-sync")

    a = bus.subscribe(Demo.PING, early)
    b = bus.subscribe(Demo.PING, lambda e: release.wait(10))
    c = bus.subscribe(Demo.PING, late)

    report = bus.publish_nowait(Event(Demo.PING)).result(timeout=1.5)

    assert sorted(called) == ["early-async", "late-sync"]
    assert sorted(s.id for s in report.succeeded) == sorted([a.id, c.id])
    assert report.timed_out == [b]
    assert (list(report.failed), list(report.skipped)) == ([], [])


def test_cancelled_queued_publish_nowait_is_skipped_and_shutdown_stays_prompt(bus: EventBus) -> None:
    """Used to: cancelling a queued ``publish_nowait`` future corrupted the
    in-flight count, so ``shutdown(timeout=1)`` waited the full second (and
    ``shutdown()`` without a timeout would hang forever)."""
    gate = threading.Event()
    calls: list[Event] = []

    def receiver(e: Event) -> None:
        calls.append(e)
        gate.wait(2)

    bus.subscribe(Demo.PING, receiver)
    first = bus.publish_nowait(Event(Demo.PING))  # occupies the worker
    second = Event(Demo.PING)
    queued = bus.publish_nowait(second)
    assert queued.cancel() is True
    gate.set()
    assert first.result(timeout=2).ok

    started = time.perf_counter()
    assert bus.shutdown(timeout=1) == 0
    assert time.perf_counter() - started < 0.5
    assert second not in calls
    assert len(calls) == 1
    assert bus.stats()["queued"] == 0

    later = bus.publish_nowait(Event(Demo.PING)).result(timeout=2)
    assert len(later.succeeded) == 1
    assert len(calls) == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("exc_type", [asyncio.CancelledError, SystemExit])
@pytest.mark.parametrize("path", ["await-publish", "publish_nowait", "publish_nowait-after-a-move"])
async def test_sync_receiver_raising_base_exception_on_a_pool_thread_is_a_failure(
    new_bus: BusFactory, release: threading.Event, exc_type: type[BaseException], path: str
) -> None:
    """Used to: a sync receiver raising a BaseException (asyncio.CancelledError,
    SystemExit) on a pool thread never completed its run: ``await publish``
    waited forever despite the bus timeout, and the worker queue stopped."""
    bus = new_bus(timeout=0.2)
    hung = None
    if path == "publish_nowait-after-a-move":
        hung = bus.subscribe(Demo.PING, lambda e: release.wait(10))

    def boom(e: Event) -> None:
        raise exc_type("from a sync helper")

    bad = bus.subscribe(Demo.PING, boom)
    if path == "await-publish":
        report = await asyncio.wait_for(bus.publish(Event(Demo.PING)), 1.5)
    else:
        report = await asyncio.wait_for(asyncio.wrap_future(bus.publish_nowait(Event(Demo.PING))), 1.5)

    assert [(s, type(e)) for s, e in report.failed] == [(bad, exc_type)]
    assert list(report.timed_out) == ([] if hung is None else [hung])
    assert report.succeeded == []
    # The worker queue still flows.
    pongs: list[Event] = []
    bus.subscribe(Demo.PONG, pongs.append)
    after = await asyncio.wait_for(asyncio.wrap_future(bus.publish_nowait(Event(Demo.PONG))), 1.5)
    assert (len(after.succeeded), len(pongs)) == (1, 1)


# -- blinker Signals used as event types ----------------------------------------------


def test_foreign_signal_receivers_get_events_before_the_bus_saw_the_signal(bus: EventBus) -> None:
    """Used to: a blinker Signal the bus had never been told about (no
    ``signal_for`` / ``subscribe``) was routed like an unknown type, so the
    receivers connected to it were not called."""
    signal = _signal()
    got: list[Event] = []

    def receiver(sender: Any, event: Event) -> None:
        got.append(event)

    signal.connect(receiver)
    event = Event(signal, source="src")
    report = bus.publish_sync(event)

    assert got == [event]
    assert [(s.plain, s.callback) for s in report.succeeded] == [(True, receiver)]


def test_foreign_signal_plain_receiver_gets_the_cycle_guard(bus: EventBus) -> None:
    """Used to: each publish made a fresh adapter for a plain receiver of a
    foreign signal, so A -> A was not seen as a cycle and ran max_depth times."""
    signal = _signal()
    calls: list[DeliveryReport] = []

    def recur(sender: Any, event: Event) -> None:
        calls.append(bus.publish_sync(Event(signal)))

    signal.connect(recur)
    outer = bus.publish_sync(Event(signal))

    assert len(calls) == 1
    inner = calls[0]
    assert [(s.id, reason) for s, reason, _ in inner.skipped] == [(outer.succeeded[0].id, "cycle")]
    assert [s.callback for s in outer.succeeded] == [recur]


def test_foreign_signal_plain_receiver_is_auto_disabled(bus: EventBus) -> None:
    """Used to: the fresh adapter per publish never accumulated failures, so a
    plain receiver of a foreign signal failing every time was never disabled."""
    bus.set_failure_threshold(2)
    signal = _signal()
    calls: list[Event] = []

    def bad(sender: Any, event: Event) -> None:
        calls.append(event)
        raise RuntimeError("x")

    signal.connect(bad)
    reports = [bus.publish_sync(Event(signal)) for _ in range(5)]

    assert len(calls) == 2
    adapter = reports[0].failed[0][0]
    assert [len(r.failed) for r in reports] == [1, 1, 0, 0, 0]
    assert [[(s, reason) for s, reason, _ in r.skipped] for r in reports[2:]] == [[(adapter, "disabled")]] * 3
    assert reports[1].disabled == [adapter]
    assert (adapter.disabled, adapter.failures) == (True, 2)
    assert all(r.failed[0][0] is adapter for r in reports[:2])


def test_foreign_signal_receivers_keep_subscription_order(bus: EventBus) -> None:
    """Used to: plain receivers of a foreign signal were always ordered first
    (sequence 0), ahead of subscriptions made earlier."""
    signal = _signal()
    order: list[str] = []
    bus.subscribe(signal, lambda e: order.append("subscribed-first"))

    def connected(sender: Any, event: Event) -> None:
        order.append("connected-second")

    signal.connect(connected)
    bus.publish_sync(Event(signal))
    bus.publish_sync(Event(signal))

    assert order == ["subscribed-first", "connected-second"] * 2


def test_second_bus_neither_delivers_nor_disables_the_first_bus_subscriptions(new_bus: BusFactory) -> None:
    """Used to: a foreign signal used on two buses made bus2's publish deliver
    to bus1's subscriptions and count their failures with bus2's guards (bus1's
    subscription was disabled by bus2's threshold)."""
    signal = _signal()
    bus1 = new_bus(failure_threshold=100)
    bus2 = new_bus(failure_threshold=1)
    got1: list[Event] = []
    got2: list[Event] = []

    def first(e: Event) -> None:
        got1.append(e)
        raise RuntimeError("bus1's receiver")

    sub1 = bus1.subscribe(signal, first)
    sub2 = bus2.subscribe(signal, got2.append)

    event = Event(signal)
    report = bus2.publish_sync(event)
    assert report.succeeded == [sub2]
    assert (list(report.failed), list(report.disabled)) == ([], [])
    assert got1 == []
    assert got2 == [event]
    assert (sub1.failures, sub1.disabled) == (0, False)
    assert bus1.get_history() == []

    own = bus1.publish_sync(Event(signal))
    assert [s for s, _ in own.failed] == [sub1]
    assert own.succeeded == []
    assert len(got1) == 1
    assert len(got2) == 1


# -- SUBSCRIBER_DISABLED ----------------------------------------------------------------


def test_disable_announced_from_a_nowait_job_with_async_receivers_runs_on_a_pool_thread(
    new_bus: BusFactory,
) -> None:
    """Used to: a ``publish_nowait`` job with async receivers finished on the bus
    loop thread, so SUBSCRIBER_DISABLED handlers ran on (and blocked) the bus
    loop; a handler waiting for another async publish deadlocked."""
    bus = new_bus(failure_threshold=1)
    others: list[Event] = []

    async def bad(e: Event) -> None:
        raise RuntimeError("x")

    async def other(e: Event) -> None:
        others.append(e)

    bad_sub = bus.subscribe(Demo.PING, bad)
    bus.subscribe(Demo.PONG, other)
    seen: dict[str, Any] = {}

    def on_disabled(e: Event) -> None:
        seen["thread"] = threading.current_thread().name
        seen["receiver"] = e.data["receiver"]
        try:
            seen["inner"] = bus.publish_nowait(Event(Demo.PONG)).result(timeout=1).ok
        except concurrent.futures.TimeoutError:
            seen["inner"] = "deadlock"

    bus.subscribe(SystemEventType.SUBSCRIBER_DISABLED, on_disabled)
    report = bus.publish_nowait(Event(Demo.PING)).result(timeout=3)

    assert report.disabled == [bad_sub]
    assert _wait_for(lambda: "inner" in seen)
    assert seen["inner"] is True
    assert seen["receiver"] == bad_sub.name
    assert not seen["thread"].endswith("-loop")
    assert len(others) == 1


@pytest.mark.asyncio
async def test_publish_sync_in_a_running_loop_announces_each_disable_once(new_bus: BusFactory) -> None:
    """Used to: ``publish_sync`` called inside a running loop announced a sync
    receiver disabled inline twice: once inline, and again when the async
    receivers it scheduled finished."""
    bus = new_bus(failure_threshold=1)
    metas: list[str] = []
    bus.subscribe(SystemEventType.SUBSCRIBER_DISABLED, lambda e: metas.append(e.data["receiver"]))

    def bad_sync(e: Event) -> None:
        raise RuntimeError("sync")

    async def bad_async(e: Event) -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("async")

    sync_sub = bus.subscribe(Demo.PING, bad_sync)
    async_sub = bus.subscribe(Demo.PING, bad_async)

    report = bus.publish_sync(Event(Demo.PING))
    assert report.scheduled == [async_sub]
    assert metas == [sync_sub.name]

    assert await _async_wait_for(lambda: len(metas) >= 2)
    await asyncio.sleep(0.1)  # room for a duplicate announcement to show up
    assert metas == [sync_sub.name, async_sub.name]
    assert report.finished
    assert report.disabled == [sync_sub, async_sub]


# -- cancellation and shutdown --------------------------------------------------------


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


def test_scheduled_receiver_cancelled_when_its_loop_ends_is_reported_cancelled(bus: EventBus) -> None:
    """Used to: a receiver scheduled by ``publish_sync`` on a running loop and
    cancelled when that loop ended vanished from the report, which still said
    finished and ok."""

    async def slow(e: Event) -> None:
        await asyncio.sleep(5)

    sub = bus.subscribe(Demo.PING, slow)
    box: dict[str, DeliveryReport] = {}

    async def main() -> None:
        box["report"] = bus.publish_sync(Event(Demo.PING))
        assert box["report"].scheduled == [sub]

    asyncio.run(main())  # ends the loop, cancelling the scheduled task
    report = box["report"]

    assert report.finished
    assert not report.ok
    assert list(report.cancelled) == [sub]
    assert sub.failures == 0
    assert (report.succeeded, list(report.failed), list(report.timed_out), list(report.skipped)) == ([], [], [], [])


@pytest.mark.asyncio
@pytest.mark.parametrize("receivers", [2, 1], ids=["tasks", "single-receiver"])
async def test_cancelled_publish_hands_receiver_tasks_to_the_bus(
    bus: EventBus, caplog: pytest.LogCaptureFixture, receivers: int
) -> None:
    """Used to: cancelling ``await publish`` cancelled its receivers' tasks but
    dropped them, so an error raised while a receiver unwound went to asyncio's
    "Task exception was never retrieved" instead of the bus's logger."""
    caplog.set_level(logging.ERROR, logger=LOGGER)
    loop = asyncio.get_running_loop()
    contexts: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: contexts.append(context))
    unwound = asyncio.Event()

    async def receiver(e: Event) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await asyncio.sleep(0)
            unwound.set()
            raise RuntimeError("cleanup failed") from None

    async def slow(e: Event) -> None:
        await asyncio.sleep(5)

    bus.subscribe(Demo.PING, receiver)
    if receivers == 2:
        bus.subscribe(Demo.PING, slow)
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(bus.publish(Event(Demo.PING)), 0.1)
        await asyncio.wait_for(unwound.wait(), 1)
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)

    assert [c["message"] for c in contexts] == []
    errors = [r.exc_info[1] for r in caplog.records if r.name == LOGGER and r.exc_info]
    assert [str(e) for e in errors if isinstance(e, RuntimeError)] == ["cleanup failed"]


# -- what receivers return or raise ---------------------------------------------------


@pytest.mark.asyncio
async def test_sync_receiver_returning_a_coroutine_is_a_type_error_and_nothing_is_left_unawaited(
    bus: EventBus,
) -> None:
    """Used to: a receiver detected as sync that returned a coroutine
    (``lambda e: handler(e)``) was reported as succeeded and the coroutine was
    dropped, with "coroutine ... was never awaited"."""
    ran: list[Event] = []

    async def handler(e: Event) -> None:
        ran.append(e)

    sub = bus.subscribe(Demo.PING, lambda e: handler(e))  # noqa: PLW0108 - the point: a sync wrapper
    assert sub.is_async is False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reports = [
            bus.publish_sync(Event(Demo.PING)),
            await bus.publish(Event(Demo.PING)),
            await asyncio.wrap_future(bus.publish_nowait(Event(Demo.PING))),
        ]
        gc.collect()

    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert ran == []
    for report in reports:
        assert report.succeeded == []
        assert [(s, type(e)) for s, e in report.failed] == [(sub, TypeError)]
        assert "returned an awaitable" in str(report.failed[0][1])


@pytest.mark.parametrize("path", ["publish_sync", "publish_nowait"])
def test_failures_kept_in_history_do_not_pin_the_receivers_locals(bus: EventBus, path: str) -> None:
    """Used to: each failure in history kept its traceback and so every local
    of the failing receiver alive (a receiver holding a 5 MB buffer: 40
    failing publishes retained ~200 MB)."""
    bus.set_failure_threshold(10**6)

    class Marker:
        pass

    refs: list[weakref.ref[Marker]] = []

    def bad(e: Event) -> None:
        buf = bytearray(5_000_000)
        marker = Marker()
        refs.append(weakref.ref(marker))
        raise ValueError(f"boom {len(buf)}")

    sub = bus.subscribe(Demo.PING, bad)
    for _ in range(20):
        if path == "publish_sync":
            bus.publish_sync(Event(Demo.PING))
        else:
            bus.publish_nowait(Event(Demo.PING)).result(timeout=2)
    gc.collect()

    reports = bus.get_delivery_reports()
    assert len(reports) == 20
    assert all([(s, type(e)) for s, e in r.failed] == [(sub, ValueError)] for r in reports)
    assert sub.last_error is not None
    assert sub.last_error.startswith("ValueError(")
    assert len(refs) == 20
    assert [r() for r in refs] == [None] * 20


@pytest.mark.asyncio
async def test_reused_exception_does_not_finalize_a_suspended_coroutine(bus: EventBus) -> None:
    """Used to (in a first version of the locals fix): the same exception object
    raised through a propagating publish (so its traceback holds this test's
    coroutine frame) and then by a non-propagating one had the bus clear that
    frame while the coroutine was suspended, which finalized the coroutine."""
    bus.set_failure_threshold(1000)
    error = ValueError("reused")

    def bad(e: Event) -> None:
        raise error

    sub = bus.subscribe(Demo.PING, bad)
    bus.set_propagate_exceptions(True)
    with pytest.raises(ValueError) as info:
        await bus.publish(Event(Demo.PING))
    assert info.value is error
    bus.set_propagate_exceptions(False)

    local_state = ["alive"]
    report = await bus.publish(Event(Demo.PING))  # suspended here while ``bad`` raises on a pool thread
    await asyncio.sleep(0)
    local_state.append("still alive")
    report2 = bus.publish_sync(Event(Demo.PING))

    assert local_state == ["alive", "still alive"]
    assert [(s, e) for s, e in report.failed] == [(sub, error)]
    assert [(s, e) for s, e in report2.failed] == [(sub, error)]


# -- subscriptions ---------------------------------------------------------------------


def test_plain_receiver_adapter_unsubscribe_disconnects_the_receiver(bus: EventBus) -> None:
    """Used to: ``unsubscribe()`` on the adapter of a plain blinker receiver only
    marked the adapter inactive; the receiver stayed connected, and connecting
    it again reused the dead adapter, so it was never called again."""
    signal = bus.signal_for(Demo.PING)
    got: list[Event] = []

    def plain(sender: Any, event: Event) -> None:
        got.append(event)

    signal.connect(plain)
    bus.publish_sync(Event(Demo.PING))
    [adapter] = bus.get_subscriptions(Demo.PING)
    assert adapter.plain is True

    assert adapter.unsubscribe() is True
    assert dict(signal.receivers) == {}
    assert bus.get_subscriber_count(Demo.PING) == 0
    assert bus.publish_sync(Event(Demo.PING)).succeeded == []
    assert len(got) == 1

    signal.connect(plain)
    again = Event(Demo.PING)
    report = bus.publish_sync(again)
    assert got[1:] == [again]
    assert [(s.plain, s.callback) for s in report.succeeded] == [(True, plain)]
    assert bus.get_subscriber_count(Demo.PING) == 1


def test_unsubscribe_by_source_none_is_refused_and_removes_nothing(bus: EventBus) -> None:
    """Used to: ``unsubscribe_by_source(None)`` removed every untagged
    subscription (None is their tag)."""
    got: list[str] = []
    bus.subscribe(Demo.PING, lambda e: got.append("untagged-ping"))
    bus.subscribe(Demo.PONG, lambda e: got.append("untagged-pong"))
    bus.subscribe(Demo.PING, lambda e: got.append("tagged"), source="comp")

    with pytest.raises(ValueError, match="source"):
        bus.unsubscribe_by_source(None)

    assert bus.get_subscriber_count() == 3
    bus.publish_sync(Event(Demo.PING))
    bus.publish_sync(Event(Demo.PONG))
    assert got == ["untagged-ping", "tagged", "untagged-pong"]


def test_same_callback_with_equal_but_not_identical_sender_is_one_subscription(bus: EventBus) -> None:
    """Used to: duplicates were found by ``sender is sender``, so subscribing the
    same callback twice with equal (not identical) sender strings made two
    subscriptions and delivered twice."""
    got: list[Event] = []
    first_sender = "".join(["sen", "der"])
    second_sender = "".join(["sen", "der"])
    assert first_sender == second_sender
    assert first_sender is not second_sender

    s1 = bus.subscribe(Demo.PING, got.append, sender=first_sender)
    s2 = bus.subscribe(Demo.PING, got.append, sender=second_sender)
    assert s1 is s2
    assert bus.get_subscriber_count(Demo.PING) == 1

    event = Event(Demo.PING, source="sender")
    bus.publish_sync(event)
    bus.publish_sync(Event(Demo.PING, source="other"))
    assert got == [event]


# -- events -----------------------------------------------------------------------------


def test_from_dict_keeps_an_event_id_whole() -> None:
    """Used to: ``from_dict`` split the id and rebuilt it from an int, so
    "abc-007" came back as "abc-7"."""
    payload = Event(Demo.PING, {"k": 1}, "src").to_dict()
    payload["event_id"] = "abc-007"
    event = Event.from_dict(payload)
    assert event.event_id == "abc-007"
    assert Event.from_dict(event.to_dict()).event_id == "abc-007"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "abc-\u0663"),  # ARABIC-INDIC DIGIT THREE: str.isdigit() is True
        ("event_id", "abc-\u00b2"),  # SUPERSCRIPT TWO: isdigit() True, int() fails
        ("timestamp", 10**400),  # an int no float can hold
        ("timestamp", 1e300),  # finite, but no datetime can hold it
    ],
    ids=["arabic-indic-digit", "superscript-digit", "huge-int-timestamp", "huge-float-timestamp"],
)
def test_from_dict_rejects_ids_and_timestamps_it_cannot_hold(field: str, value: Any) -> None:
    """Used to: non-ASCII digits passed ``isdigit()`` (then crashed or were
    accepted), and timestamps no datetime can hold were accepted, failing
    later on ``event.timestamp``."""
    payload = Event(Demo.PING).to_dict()
    payload[field] = value
    with pytest.raises(ValueError, match=field):
        Event.from_dict(payload)


# -- executors and the bus loop ----------------------------------------------------------


@pytest.mark.asyncio
async def test_thread_sensitive_publish_behind_a_hung_receiver_is_abandoned_at_its_deadline(
    new_bus: BusFactory, release: threading.Event
) -> None:
    """Used to: with ``sync_executor="thread_sensitive"``, once a receiver hung,
    the next ``await publish`` queued behind it on asgiref's single thread;
    its run never started, so no deadline applied and it waited for the hung
    receiver to return."""
    bus = new_bus(sync_executor="thread_sensitive", timeout=0.2)
    calls: list[Event] = []

    def receiver(e: Event) -> None:
        calls.append(e)
        if len(calls) == 1:
            release.wait(3)

    sub = bus.subscribe(Demo.PING, receiver)
    try:
        started = time.perf_counter()
        first = await asyncio.wait_for(bus.publish(Event(Demo.PING)), 1.5)
        assert first.timed_out == [sub]

        started = time.perf_counter()
        second = await asyncio.wait_for(bus.publish(Event(Demo.PING)), 1.5)
        assert time.perf_counter() - started < 1.0
        assert [(s, reason) for s, reason, _ in second.skipped] == [(sub, "abandoned")]
        assert (second.succeeded, list(second.failed), list(second.timed_out)) == ([], [], [])
        assert len(calls) == 1
    finally:
        release.set()
        # asgiref's thread-sensitive executor is shared by the whole process:
        # make sure it is free again before the next test.
        await asyncio.wait_for(sync_to_async(lambda: None, thread_sensitive=True)(), 5)
    assert len(calls) == 1  # the given-up run never starts later


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
