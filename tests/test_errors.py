"""Error isolation, exception propagation, error logging and auto-disable
(with the SUBSCRIBER_DISABLED meta-event)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from blinker_events import (
    DeliveryReport,
    Event,
    EventBus,
    EventType,
    Subscription,
    SystemEventType,
)

from .conftest import WAIT, BusFactory, Demo, all_collected, async_wait_until, event_holding_a_component, wait_until

META = SystemEventType.SUBSCRIBER_DISABLED


class Boom(Exception):
    """A receiver's own exception."""


def boom(event: Event) -> None:
    raise Boom(event.data.get("n"))


def failing_with(exc: BaseException) -> Callable[[Event], None]:
    def receiver(event: Event) -> None:
        raise exc

    return receiver


def records(caplog: pytest.LogCaptureFixture, level: int, needle: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "blinker_events" and r.levelno == level and needle in r.getMessage()]


@pytest.fixture
def propagating_bus() -> Iterator[EventBus]:
    bus = EventBus(propagate_exceptions=True)
    yield bus
    assert bus.shutdown(timeout=10) == 0


# -- isolation ---------------------------------------------------------------


def test_a_failing_receiver_does_not_stop_the_others(bus: EventBus) -> None:
    calls: list[str] = []
    error = Boom("first")
    first = bus.subscribe(Demo.PING, failing_with(error))
    second = bus.subscribe(Demo.PING, lambda e: calls.append("second"))
    third = bus.subscribe(Demo.PING, lambda e: calls.append("third"))

    report = bus.publish_sync(Event(Demo.PING))

    assert calls == ["second", "third"]
    assert list(report.failed) == [(first, error)]
    assert report.succeeded == [second, third]
    assert report.ok is False
    assert report.errors() == [error]


@pytest.mark.asyncio
async def test_a_failing_receiver_does_not_stop_the_others_with_await_publish(bus: EventBus) -> None:
    calls: list[str] = []
    error = Boom("first")

    async def second(event: Event) -> None:
        calls.append("second")

    first_sub = bus.subscribe(Demo.PING, failing_with(error))
    second_sub = bus.subscribe(Demo.PING, second)
    third_sub = bus.subscribe(Demo.PING, lambda e: calls.append("third"))

    report = await bus.publish(Event(Demo.PING))
    assert sorted(calls) == ["second", "third"]
    assert list(report.failed) == [(first_sub, error)]
    assert set(report.succeeded) == {second_sub, third_sub}


# -- propagation -------------------------------------------------------------


def test_propagation_raises_the_exception_itself_after_all_receivers_ran(propagating_bus: EventBus) -> None:
    bus = propagating_bus
    calls: list[str] = []
    error = Boom("only")
    bus.subscribe(Demo.PING, failing_with(error))
    bus.subscribe(Demo.PING, lambda e: calls.append("second"))
    bus.subscribe(Demo.PING, lambda e: calls.append("third"))

    with pytest.raises(Boom) as excinfo:
        bus.publish_sync(Event(Demo.PING))

    assert excinfo.value is error
    assert calls == ["second", "third"]
    (report,) = bus.get_delivery_reports()
    assert len(report.succeeded) == 2


def test_propagation_with_two_failures_raises_an_exception_group_in_order(propagating_bus: EventBus) -> None:
    bus = propagating_bus
    calls: list[str] = []
    first, second = Boom("one"), ValueError("two")
    bus.subscribe(Demo.PING, failing_with(first))
    bus.subscribe(Demo.PING, lambda e: calls.append("middle"))
    bus.subscribe(Demo.PING, failing_with(second))
    bus.subscribe(Demo.PING, lambda e: calls.append("last"))

    with pytest.raises(ExceptionGroup) as excinfo:
        bus.publish_sync(Event(Demo.PING))

    assert type(excinfo.value) is ExceptionGroup
    assert excinfo.value.exceptions == (first, second)
    assert calls == ["middle", "last"]


@pytest.mark.asyncio
async def test_propagation_with_await_publish_raises_the_exception_itself(propagating_bus: EventBus) -> None:
    bus = propagating_bus
    calls: list[str] = []
    error = Boom("only")

    async def later(event: Event) -> None:
        calls.append("async")

    bus.subscribe(Demo.PING, failing_with(error))
    bus.subscribe(Demo.PING, later)
    bus.subscribe(Demo.PING, lambda e: calls.append("sync"))

    with pytest.raises(Boom) as excinfo:
        await bus.publish(Event(Demo.PING))
    assert excinfo.value is error
    assert sorted(calls) == ["async", "sync"]


@pytest.mark.asyncio
async def test_propagation_with_await_publish_raises_an_exception_group(propagating_bus: EventBus) -> None:
    bus = propagating_bus
    first, second = Boom("one"), ValueError("two")
    calls: list[str] = []
    bus.subscribe(Demo.PING, failing_with(first))
    bus.subscribe(Demo.PING, lambda e: calls.append("middle"))
    bus.subscribe(Demo.PING, failing_with(second))

    with pytest.raises(ExceptionGroup) as excinfo:
        await bus.publish(Event(Demo.PING))
    assert excinfo.value.exceptions == (first, second)
    assert calls == ["middle"]


@pytest.mark.asyncio
async def test_propagation_with_two_async_failures_raises_an_exception_group(propagating_bus: EventBus) -> None:
    bus = propagating_bus
    first, second = Boom("one"), ValueError("two")

    async def fail_first(event: Event) -> None:
        raise first

    async def fail_second(event: Event) -> None:
        raise second

    bus.subscribe(Demo.PING, fail_first)
    bus.subscribe(Demo.PING, fail_second)
    with pytest.raises(ExceptionGroup) as excinfo:
        await bus.publish(Event(Demo.PING))
    assert excinfo.value.exceptions == (first, second)


def test_propagation_off_returns_the_report_without_raising(bus: EventBus) -> None:
    error = Boom("x")
    sub = bus.subscribe(Demo.PING, failing_with(error))
    report = bus.publish_sync(Event(Demo.PING))
    assert list(report.failed) == [(sub, error)]
    with pytest.raises(Boom):
        report.raise_errors()


def test_set_propagate_exceptions_toggles_raising(bus: EventBus) -> None:
    error = Boom("x")
    bus.subscribe(Demo.PING, failing_with(error))
    bus.set_propagate_exceptions(True)
    with pytest.raises(Boom):
        bus.publish_sync(Event(Demo.PING))
    bus.set_propagate_exceptions(False)
    assert bus.publish_sync(Event(Demo.PING)).errors() == [error]


# -- logging -----------------------------------------------------------------


def test_a_failure_is_logged_at_error_naming_event_and_receiver(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    error = Boom("logged")

    def named_receiver(event: Event) -> None:
        raise error

    sub = bus.subscribe(Demo.PING, named_receiver)
    event = Event(Demo.PING, {"k": 1})
    bus.publish_sync(event)

    errors = [r for r in caplog.records if r.name == "blinker_events" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "named_receiver" in message
    assert sub.name in message
    assert repr(event) in message
    assert errors[0].exc_info is not None
    assert errors[0].exc_info[1] is error


@pytest.mark.asyncio
async def test_an_async_failure_is_logged_at_error_naming_event_and_receiver(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    async def async_named_receiver(event: Event) -> None:
        raise Boom("async")

    bus.subscribe(Demo.PING, async_named_receiver)
    event = Event(Demo.PING)
    await bus.publish(event)
    errors = [r for r in caplog.records if r.name == "blinker_events" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "async_named_receiver" in errors[0].getMessage()
    assert repr(event) in errors[0].getMessage()


# -- auto-disable ------------------------------------------------------------


def meta_recorder(bus: EventBus) -> list[Event]:
    seen: list[Event] = []
    bus.subscribe(META, seen.append)
    return seen


def test_auto_disable_after_threshold_consecutive_failures(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    assert bus.failure_threshold == 3
    meta = meta_recorder(bus)
    sub = bus.subscribe(Demo.PING, boom)

    for n in (1, 2):
        report = bus.publish_sync(Event(Demo.PING, {"n": n}))
        assert sub.failures == n
        assert sub.disabled is False
        assert list(report.disabled) == []
    assert meta == []

    report = bus.publish_sync(Event(Demo.PING, {"n": 3}))
    # delivered before publish_sync returned
    assert len(meta) == 1
    assert sub.disabled is True
    assert sub.failures == 3
    assert list(report.disabled) == [sub]
    assert len(records(caplog, logging.WARNING, "disabled after")) == 1
    assert sub.name in records(caplog, logging.WARNING, "disabled after")[0].getMessage()

    (announcement,) = meta
    assert announcement.event_type is META
    assert announcement.source == bus.name
    assert dict(announcement.data) == {
        "subscription_id": sub.id,
        "receiver": sub.name,
        "event_type": "Demo.PING",
        "failures": 3,
        "error": repr(Boom(3)),
    }
    assert bus.get_subscriptions(disabled=True) == [sub]
    assert bus.stats()["disabled"] == 1


@pytest.mark.asyncio
async def test_auto_disable_with_await_publish_announces_before_returning(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    meta = meta_recorder(bus)
    sub = bus.subscribe(Demo.PING, boom)
    for n in (1, 2):
        await bus.publish(Event(Demo.PING, {"n": n}))
    assert meta == []
    report = await bus.publish(Event(Demo.PING, {"n": 3}))
    assert len(meta) == 1
    assert list(report.disabled) == [sub]
    assert sub.disabled is True
    assert meta[0].data["subscription_id"] == sub.id
    assert meta[0].data["failures"] == 3
    assert len(records(caplog, logging.WARNING, "disabled after")) == 1


@pytest.mark.asyncio
async def test_auto_disable_of_an_async_receiver_with_await_publish(bus: EventBus) -> None:
    seen: list[Event] = []

    async def on_meta(event: Event) -> None:
        seen.append(event)

    async def fails(event: Event) -> None:
        raise Boom(event.data.get("n"))

    bus.subscribe(META, on_meta)
    sub = bus.subscribe(Demo.PING, fails)
    for n in (1, 2, 3):
        report = await bus.publish(Event(Demo.PING, {"n": n}))
    assert list(report.disabled) == [sub]
    assert [e.data["subscription_id"] for e in seen] == [sub.id]


def test_auto_disable_with_publish_nowait_announces_before_the_future_resolves(bus: EventBus) -> None:
    meta = meta_recorder(bus)
    sub = bus.subscribe(Demo.PING, boom)
    for n in (1, 2):
        bus.publish_nowait(Event(Demo.PING, {"n": n})).result(5)
    report = bus.publish_nowait(Event(Demo.PING, {"n": 3})).result(5)
    assert list(report.disabled) == [sub]
    assert [e.data["subscription_id"] for e in meta] == [sub.id]


def test_a_success_resets_the_consecutive_failure_count(bus: EventBus) -> None:
    def sometimes(event: Event) -> None:
        if event.data["fail"]:
            raise Boom()

    sub = bus.subscribe(Demo.PING, sometimes)
    for fail in (True, True, False, True, True, False, True, True):
        bus.publish_sync(Event(Demo.PING, {"fail": fail}))
    assert sub.failures == 2
    assert sub.disabled is False
    bus.publish_sync(Event(Demo.PING, {"fail": True}))
    assert sub.disabled is True


def test_timeouts_count_as_failures(bus: EventBus) -> None:
    """An inline receiver that overruns its timeout counts as a failure."""
    bus.set_failure_threshold(2)
    sub = bus.subscribe(Demo.PING, lambda e: time.sleep(0.1), timeout=0.02)
    bus.publish_sync(Event(Demo.PING))
    assert sub.failures == 1
    report = bus.publish_sync(Event(Demo.PING))
    assert list(report.timed_out) == [sub]
    assert list(report.disabled) == [sub]


def test_a_wildcard_subscription_is_disabled_for_every_event_type(bus: EventBus) -> None:
    calls: list[object] = []

    def fails_on_everything(event: Event) -> None:
        calls.append(event.event_type)
        raise Boom()

    sub = bus.subscribe(None, fails_on_everything)
    bus.publish_sync(Event(Demo.PING))
    bus.publish_sync(Event(Demo.PONG))
    report = bus.publish_sync(Event(Demo.OTHER))
    assert list(report.disabled) == [sub]
    # the meta-event reached it too, but it was already disabled
    assert calls == [Demo.PING, Demo.PONG, Demo.OTHER]

    class Later(EventType):
        NEW = "later-new"

    for event_type in (Demo.PING, Demo.PONG, Demo.OTHER, "some-string-type", Later.NEW):
        report = bus.publish_sync(Event(event_type))
        assert list(report.skipped) == [(sub, "disabled", None)], event_type
        assert report.succeeded == []
    assert calls == [Demo.PING, Demo.PONG, Demo.OTHER]


def test_failure_counts_belong_to_the_subscription_not_to_the_callback_id(bus: EventBus) -> None:
    def make() -> Callable[[Event], None]:
        def fresh(event: Event) -> None:
            boom(event)

        return fresh

    first = make()
    old = bus.subscribe(Demo.PING, first)
    bus.publish_sync(Event(Demo.PING))
    bus.publish_sync(Event(Demo.PING))
    assert old.failures == 2
    assert bus.unsubscribe(Demo.PING, first) == 1
    del first
    gc.collect()

    new = bus.subscribe(Demo.PING, make())
    assert new is not old
    assert new.failures == 0
    report = bus.publish_sync(Event(Demo.PING))
    assert new.failures == 1
    assert new.disabled is False
    assert list(report.disabled) == []


def test_enable_re_enables_and_resets_the_count(bus: EventBus) -> None:
    calls: list[int] = []

    def flaky(event: Event) -> None:
        calls.append(event.data["n"])
        if event.data["fail"]:
            raise Boom()

    sub = bus.subscribe(Demo.PING, flaky)
    for n in range(3):
        bus.publish_sync(Event(Demo.PING, {"n": n, "fail": True}))
    assert sub.disabled is True

    report = bus.publish_sync(Event(Demo.PING, {"n": 99, "fail": False}))
    assert list(report.skipped) == [(sub, "disabled", None)]
    assert calls == [0, 1, 2]

    sub.enable()
    assert sub.disabled is False
    assert sub.failures == 0
    assert bus.publish_sync(Event(Demo.PING, {"n": 3, "fail": False})).succeeded == [sub]
    assert calls == [0, 1, 2, 3]
    # the count starts over: two new failures do not disable it
    bus.publish_sync(Event(Demo.PING, {"n": 4, "fail": True}))
    bus.publish_sync(Event(Demo.PING, {"n": 5, "fail": True}))
    assert sub.disabled is False
    assert sub.failures == 2


def test_disabled_subscriptions_are_reported_skipped(bus: EventBus) -> None:
    bus.set_failure_threshold(1)
    calls: list[str] = []
    bad = bus.subscribe(Demo.PING, boom)
    good = bus.subscribe(Demo.PING, lambda e: calls.append("good"))
    bus.publish_sync(Event(Demo.PING))
    report = bus.publish_sync(Event(Demo.PING))
    assert report.succeeded == [good]
    assert list(report.skipped) == [(bad, "disabled", None)]
    assert list(report.failed) == []
    assert report.ok is True
    assert calls == ["good", "good"]


def test_a_failing_meta_event_handler_is_disabled_without_cascade(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    bus.set_failure_threshold(2)
    handler_calls: list[Event] = []

    def bad_meta_handler(event: Event) -> None:
        handler_calls.append(event)
        raise Boom("meta")

    handler = bus.subscribe(META, bad_meta_handler)
    x = bus.subscribe(Demo.PING, boom)
    y = bus.subscribe(Demo.PONG, boom)
    z = bus.subscribe(Demo.OTHER, boom)

    for event_type in (Demo.PING, Demo.PONG, Demo.OTHER):
        for _ in range(2):
            bus.publish_sync(Event(event_type))

    assert [x.disabled, y.disabled, z.disabled] == [True, True, True]
    assert handler.disabled is True
    announced = bus.get_history(META)
    # one announcement per disabled receiver; the handler's own disabling is not announced
    assert [e.data["subscription_id"] for e in announced] == [x.id, y.id, z.id]
    assert handler_calls == announced[:2]
    assert len(records(caplog, logging.WARNING, "disabled after")) == 4
    meta_reports = bus.get_delivery_reports(META)
    assert [list(r.disabled) for r in meta_reports] == [[], [handler], []]
    assert list(meta_reports[2].skipped) == [(handler, "disabled", None)]


def test_a_failing_meta_handler_with_threshold_one(bus: EventBus) -> None:
    bus.set_failure_threshold(1)
    handler_calls: list[Event] = []

    def bad_meta_handler(event: Event) -> None:
        handler_calls.append(event)
        raise Boom("meta")

    handler = bus.subscribe(META, bad_meta_handler)
    x = bus.subscribe(Demo.PING, boom)
    bus.publish_sync(Event(Demo.PING))
    assert x.disabled is True
    assert handler.disabled is True
    assert len(handler_calls) == 1
    assert len(bus.get_history(META)) == 1
    assert len(bus.get_history()) == 2


def test_a_wildcard_failing_handler_sees_its_own_announcement_once(bus: EventBus) -> None:
    """A catch-all that always fails also receives the meta-events; it is
    disabled once and nothing loops."""
    bus.set_failure_threshold(1)
    calls: list[object] = []

    def everything(event: Event) -> None:
        calls.append(event.event_type)
        raise Boom()

    sub = bus.subscribe(None, everything)
    report = bus.publish_sync(Event(Demo.PING))
    assert list(report.disabled) == [sub]
    assert calls == [Demo.PING]
    assert [e.event_type for e in bus.get_history()] == [Demo.PING, META]


def test_propagation_with_a_failing_meta_handler_raises_only_the_original_error(
    propagating_bus: EventBus,
) -> None:
    bus = propagating_bus
    bus.set_failure_threshold(1)
    handler_calls: list[Event] = []
    error = Boom("original")

    def bad_meta_handler(event: Event) -> None:
        handler_calls.append(event)
        raise RuntimeError("meta handler")

    bus.subscribe(META, bad_meta_handler)
    sub = bus.subscribe(Demo.PING, failing_with(error))
    with pytest.raises(Boom) as excinfo:
        bus.publish_sync(Event(Demo.PING))
    assert excinfo.value is error
    assert sub.disabled is True
    assert [e.data["subscription_id"] for e in handler_calls] == [sub.id]


@pytest.mark.asyncio
async def test_propagation_with_a_failing_meta_handler_with_await_publish(propagating_bus: EventBus) -> None:
    bus = propagating_bus
    bus.set_failure_threshold(1)
    handler_calls: list[Event] = []
    error = Boom("original")

    async def bad_meta_handler(event: Event) -> None:
        handler_calls.append(event)
        raise RuntimeError("meta handler")

    bus.subscribe(META, bad_meta_handler)
    sub = bus.subscribe(Demo.PING, failing_with(error))
    with pytest.raises(Boom) as excinfo:
        await bus.publish(Event(Demo.PING))
    assert excinfo.value is error
    assert [e.data["subscription_id"] for e in handler_calls] == [sub.id]


def test_propagation_with_a_failing_meta_handler_and_publish_nowait() -> None:
    bus = EventBus(propagate_exceptions=True, failure_threshold=1)
    try:
        error = Boom("original")
        handler_calls: list[Event] = []

        def bad_meta_handler(event: Event) -> None:
            handler_calls.append(event)
            raise RuntimeError("meta handler")

        bus.subscribe(META, bad_meta_handler)
        bus.subscribe(Demo.PING, failing_with(error))
        assert bus.publish_nowait(Event(Demo.PING)).exception(5) is error
        assert len(handler_calls) == 1
    finally:
        assert bus.shutdown(timeout=10) == 0


def test_disabled_report_lists_every_subscription_tipped_by_one_publish(bus: EventBus) -> None:
    bus.set_failure_threshold(1)
    meta = meta_recorder(bus)
    a = bus.subscribe(Demo.PING, boom)
    b = bus.subscribe(Demo.PING, failing_with(ValueError("b")))
    report: DeliveryReport = bus.publish_sync(Event(Demo.PING))
    assert list(report.disabled) == [a, b]
    assert [e.data["subscription_id"] for e in meta] == [a.id, b.id]
    assert [e.data["error"] for e in meta] == [repr(Boom(None)), repr(ValueError("b"))]


def test_last_error_is_kept_on_the_subscription(bus: EventBus) -> None:
    error = Boom("kept")
    sub: Subscription = bus.subscribe(Demo.PING, failing_with(error))
    bus.publish_sync(Event(Demo.PING))
    assert sub.last_error == repr(error)


@pytest.mark.asyncio
async def test_propagation_with_a_failing_meta_handler_for_scheduled_receivers(propagating_bus: EventBus) -> None:
    bus = propagating_bus
    bus.set_failure_threshold(1)
    handler_calls: list[Event] = []
    unhandled: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: unhandled.append(context))

    def bad_meta_handler(event: Event) -> None:
        handler_calls.append(event)
        raise RuntimeError("meta handler")

    async def fails(event: Event) -> None:
        raise Boom("original")

    bus.subscribe(META, bad_meta_handler)
    sub = bus.subscribe(Demo.PING, fails)
    report = bus.publish_sync(Event(Demo.PING))  # inside a running loop: scheduled as a task
    assert list(report.scheduled) == [sub]
    for _ in range(100):
        if handler_calls:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.02)
    gc.collect()
    await asyncio.sleep(0)
    assert report.finished is True
    assert [e.data["subscription_id"] for e in handler_calls] == [sub.id]
    assert unhandled == []


def test_a_failed_subscription_keeps_a_description_of_its_last_error_not_the_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The exception may hold the event (ValueError(event)), and with it the
    # source and data: with history_size=0 nothing may keep them, not even
    # a subscription that failed (and was disabled) for good.
    monkeypatch.setattr(logging.getLogger("blinker_events"), "disabled", True)  # pytest keeps log records
    bus = EventBus(history_size=0, failure_threshold=1)

    def fail(event: Event) -> None:
        raise ValueError(event)

    sub = bus.subscribe(Demo.PING, fail)
    event, ref = event_holding_a_component()
    bus.publish_sync(event)
    assert sub.disabled
    assert isinstance(sub.last_error, str)
    assert sub.last_error.startswith("ValueError(Event(Demo.PING, {'component': <")
    del event
    assert all_collected([ref])
    assert bus.shutdown(timeout=10) == 0


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
    assert wait_until(lambda: "inner" in seen, 3.0)
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

    assert await async_wait_until(lambda: len(metas) >= 2, 3.0)
    await asyncio.sleep(0.1)  # room for a duplicate announcement to show up
    assert metas == [sync_sub.name, async_sub.name]
    assert report.finished
    assert report.disabled == [sync_sub, async_sub]


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


# failure mode 15: exception propagation
def test_propagation_runs_the_remaining_receivers_first() -> None:
    """With exception propagation on, the first exception aborted the remaining
    subscribers."""
    bus = EventBus(propagate_exceptions=True)
    try:
        calls: list[str] = []
        error = ValueError("first")

        def first(event: Event) -> None:
            calls.append("first")
            raise error

        bus.subscribe(Demo.PING, first)
        bus.subscribe(Demo.PING, lambda e: calls.append("second"))
        bus.subscribe(Demo.PING, lambda e: calls.append("third"))
        with pytest.raises(ValueError) as excinfo:
            bus.publish_sync(Event(Demo.PING))
        assert excinfo.value is error
        assert calls == ["first", "second", "third"]
    finally:
        assert bus.shutdown(timeout=10) == 0


# failure mode 16: errors in the worker or the bus loop
@pytest.mark.asyncio
async def test_errors_on_the_worker_and_the_bus_loop_reach_the_publisher() -> None:
    """Errors raised in the worker thread or in the private loop were logged or
    lost, never handed back to anyone."""
    bus = EventBus()
    propagating = EventBus(propagate_exceptions=True)
    try:
        sync_error, async_error = ValueError("sync"), KeyError("async")

        def sync_fails(event: Event) -> None:
            raise sync_error

        async def async_fails(event: Event) -> None:
            await asyncio.sleep(0)
            raise async_error

        for b in (bus, propagating):
            b.subscribe(Demo.PING, sync_fails)
            b.subscribe(Demo.PONG, async_fails)

        # worker thread (sync receiver) and bus loop (async receiver) -> the future's report
        report = await asyncio.wrap_future(bus.publish_nowait(Event(Demo.PING)))
        assert [e for _, e in report.failed] == [sync_error]
        report = await asyncio.wrap_future(bus.publish_nowait(Event(Demo.PONG)))
        assert [e for _, e in report.failed] == [async_error]
        # ... or, with propagation, the future's exception
        assert propagating.publish_nowait(Event(Demo.PING)).exception(WAIT) is sync_error
        assert propagating.publish_nowait(Event(Demo.PONG)).exception(WAIT) is async_error

        # the private loop under publish_sync from a plain thread -> the report / the raise
        report = await asyncio.to_thread(bus.publish_sync, Event(Demo.PONG))
        assert [e for _, e in report.failed] == [async_error]
        with pytest.raises(KeyError) as excinfo:
            await asyncio.to_thread(propagating.publish_sync, Event(Demo.PONG))
        assert excinfo.value is async_error

        # tasks scheduled on the caller's loop -> the report, once finished
        report = bus.publish_sync(Event(Demo.PONG))
        assert report.finished is False
        assert await async_wait_until(lambda: report.finished)
        assert [e for _, e in report.failed] == [async_error]
    finally:
        assert bus.shutdown(timeout=10) == 0
        assert propagating.shutdown(timeout=10) == 0


# failure mode 17: failure counts
def test_failure_counts_are_per_subscription_reset_locked_and_whole(bus: EventBus) -> None:
    """Failure counts were keyed by `id(callback)` (reused after garbage
    collection), never reset on success, updated without a lock, and
    auto-disable removed a wildcard subscriber from only the one event type that
    happened to tip the count."""

    # keyed per subscription: a new subscription starts at 0
    def make() -> Any:
        return lambda e: 1 / 0

    fn = make()
    old = bus.subscribe(Demo.PING, fn)
    bus.publish_sync(Event(Demo.PING))
    bus.publish_sync(Event(Demo.PING))
    assert old.failures == 2
    assert old.unsubscribe() is True
    del fn
    gc.collect()
    new = bus.subscribe(Demo.PING, make())
    assert new.failures == 0
    assert new.unsubscribe() is True

    # reset on success
    def flaky(event: Event) -> None:
        if event.data["fail"]:
            raise ValueError

    sub = bus.subscribe(Demo.PONG, flaky)
    for fail in (True, True, False, True, True):
        bus.publish_sync(Event(Demo.PONG, {"fail": fail}))
    assert (sub.failures, sub.disabled) == (2, False)
    assert sub.unsubscribe() is True

    # counted under a lock: exact under contention
    bus.set_failure_threshold(1000)
    counted = bus.subscribe(Demo.OTHER, make())
    start = threading.Barrier(10, timeout=WAIT)

    def hammer() -> None:
        start.wait()
        for _ in range(10):
            bus.publish_sync(Event(Demo.OTHER))

    threads = [threading.Thread(target=hammer) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert [t.is_alive() for t in threads] == [False] * 10
    assert counted.failures == 100
    assert counted.unsubscribe() is True

    # a wildcard is disabled for every type
    bus.set_failure_threshold(3)
    wildcard = bus.subscribe(None, make())
    for event_type in (Demo.PING, Demo.PONG, Demo.OTHER):
        bus.publish_sync(Event(event_type))
    assert wildcard.disabled is True
    for event_type in (Demo.PING, Demo.PONG, Demo.OTHER, "brand-new-type"):
        assert list(bus.publish_sync(Event(event_type)).skipped) == [(wildcard, "disabled", None)]
