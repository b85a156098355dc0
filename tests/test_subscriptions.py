"""The subscribe API: handles, the decorator form, catch-all subscriptions,
every kind of callback, weak/strong holding, source tags, unsubscribe counts,
sender filters, plain blinker receivers and blinker signals as event types."""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import warnings
from collections.abc import Iterator
from enum import Enum, auto
from typing import Any

import pytest
from blinker import ANY, NamedSignal, Signal

import blinker_events
from blinker_events import DeliveryReport, Event, EventBus, EventType, Subscription, default_bus

from .conftest import BusFactory, Demo

# -- helpers -------------------------------------------------------------------


class Recorder:
    """A component whose bound methods record the events they get."""

    def __init__(self, log: list[Any], tag: str = "method") -> None:
        self.log = log
        self.tag = tag

    def on_event(self, event: Event) -> None:
        self.log.append((self.tag, event))

    async def on_event_async(self, event: Event) -> None:
        await asyncio.sleep(0)
        self.log.append((self.tag + "-async", event))


class SyncCallable:
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def __call__(self, event: Event) -> None:
        self.log.append(("sync-call", event))


class AsyncCallable:
    """An object with ``async def __call__``: it must be detected as async and awaited."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.awaited = 0

    async def __call__(self, event: Event) -> None:
        await asyncio.sleep(0)
        self.awaited += 1
        self.log.append(("async-call", event))


def _record(log: list[Any], tag: str, event: Event) -> None:
    log.append((tag, event))


async def _record_async(log: list[Any], tag: str, event: Event) -> None:
    await asyncio.sleep(0)
    log.append((tag, event))


def _tags(log: list[Any]) -> list[str]:
    return [tag for tag, _ in log]


# -- handles and the decorator -------------------------------------------------


def test_subscribe_returns_a_handle(bus: EventBus) -> None:
    def receiver(event: Event) -> None:
        pass

    sub = bus.subscribe(Demo.PING, receiver, source="owner")
    assert isinstance(sub, Subscription)
    assert sub.callback is receiver
    assert sub.event_type is Demo.PING
    assert sub.source == "owner"
    assert sub.sender is ANY
    assert sub.timeout is None
    assert sub.reentrant is False
    assert sub.is_async is False
    assert sub.disabled is False
    assert sub.active is True
    assert sub.failures == 0
    assert bus.get_subscriptions() == [sub]


def test_decorator_returns_function_unchanged_and_subscribes_it(bus: EventBus) -> None:
    seen: list[Event] = []

    def handler(event: Event) -> None:
        seen.append(event)

    decorated = bus.subscribe(Demo.PING, source="deco")(handler)
    assert decorated is handler
    (sub,) = bus.get_subscriptions()
    assert sub.callback is handler
    assert sub.source == "deco"
    event = Event(Demo.PING)
    bus.publish_sync(event)
    assert seen == [event]


def test_decorator_syntax(bus: EventBus) -> None:
    seen: list[Event] = []

    @bus.subscribe(Demo.PONG)
    def on_pong(event: Event) -> None:
        seen.append(event)

    assert callable(on_pong)
    assert on_pong.__name__ == "on_pong"
    assert bus.get_subscriber_count(Demo.PONG) == 1
    event = Event(Demo.PONG)
    bus.publish_sync(event)
    assert seen == [event]


# -- catch-all -----------------------------------------------------------------


def test_catch_all_gets_every_event_including_types_defined_later(bus: EventBus) -> None:
    seen: list[Event] = []
    bus.subscribe(None, seen.append)

    class Later(Enum):
        NEW = "new"

    class LaterTypes(EventType):
        NEWER = "newer"

    events = [
        Event(Demo.PING),
        Event(Later.NEW),
        Event(LaterTypes.NEWER),
        Event("made.up.later"),
        Event(EventType.SYSTEM_SHUTDOWN),
    ]
    for event in events:
        bus.publish_sync(event)
    assert seen == events
    assert bus.get_subscriber_count(Later.NEW) == 1
    assert bus.get_subscriber_count("anything") == 1


def test_catch_all_and_typed_subscriptions_in_subscription_order(bus: EventBus) -> None:
    log: list[Any] = []

    class Fresh(Enum):
        A = 1

    bus.subscribe(Fresh.A, functools.partial(_record, log, "typed-1"))
    bus.subscribe(None, functools.partial(_record, log, "all"))
    bus.subscribe(Fresh.A, functools.partial(_record, log, "typed-2"))
    bus.publish_sync(Event(Fresh.A))
    assert _tags(log) == ["typed-1", "all", "typed-2"]
    assert bus.get_subscriber_count(Fresh.A) == 3


# -- callback kinds ------------------------------------------------------------


def test_every_kind_of_callback_is_delivered_and_awaited(bus: EventBus) -> None:
    log: list[Any] = []

    def function(event: Event) -> None:
        log.append(("function", event))

    counter = {"closure": 0}

    def make_closure() -> Any:
        def closure(event: Event) -> None:
            counter["closure"] += 1
            log.append(("closure", event))

        return closure

    async def async_function(event: Event) -> None:
        await asyncio.sleep(0)
        log.append(("async-function", event))

    component = Recorder(log)
    async_obj = AsyncCallable(log)
    callbacks = {
        "function": function,
        "method": component.on_event,
        "closure": make_closure(),
        "lambda": lambda event: log.append(("lambda", event)),
        "partial": functools.partial(_record, log, "partial"),
        "sync-call": SyncCallable(log),
        "async-call": async_obj,
        "async-partial": functools.partial(_record_async, log, "async-partial"),
        "async-function": async_function,
        "method-async": component.on_event_async,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        subs = {name: bus.subscribe(Demo.PING, cb) for name, cb in callbacks.items()}
        event = Event(Demo.PING)
        report = bus.publish_sync(event)
        gc.collect()  # an un-awaited coroutine would warn (-> error) when collected
    async_names = {"async-call", "async-partial", "async-function", "method-async"}
    assert {name for name, sub in subs.items() if sub.is_async} == async_names
    # Sync receivers run inline in subscription order, then async ones.
    assert _tags(log)[:6] == ["function", "method", "closure", "lambda", "partial", "sync-call"]
    assert sorted(_tags(log)[6:]) == sorted(async_names)
    assert all(e is event for _, e in log)
    assert async_obj.awaited == 1
    assert report.failed == ()
    assert sorted(s.id for s in report.succeeded) == sorted(s.id for s in subs.values())


@pytest.mark.asyncio
async def test_async_call_object_awaited_under_await_publish(bus: EventBus) -> None:
    log: list[Any] = []
    obj = AsyncCallable(log)
    partial = functools.partial(_record_async, log, "async-partial")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bus.subscribe(Demo.PING, obj)
        bus.subscribe(Demo.PING, partial)
        report = await bus.publish(Event(Demo.PING))
        gc.collect()
    assert obj.awaited == 1
    assert sorted(_tags(log)) == ["async-call", "async-partial"]
    assert len(report.succeeded) == 2
    assert report.failed == ()


def test_async_call_object_awaited_under_publish_nowait(bus: EventBus) -> None:
    log: list[Any] = []
    obj = AsyncCallable(log)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sub = bus.subscribe(Demo.PING, obj)
        report = bus.publish_nowait(Event(Demo.PING)).result(timeout=10)
        gc.collect()
    assert sub.is_async is True
    assert obj.awaited == 1
    assert report.succeeded == [sub]


# -- the guide's lifecycle example ---------------------------------------------


@pytest.fixture
def restore_default_bus() -> Iterator[None]:
    """Leave the module-level default bus as the test found it."""
    subs_before = default_bus.get_subscriptions()
    reports_before = default_bus.get_delivery_reports()
    yield
    default_bus.unsubscribe_by_source("MyComponent")
    default_bus.unsubscribe_by_source("OtherComponent")
    for sub in default_bus.get_subscriptions():
        if sub not in subs_before:
            sub.unsubscribe()
    default_bus.clear_history()
    for report in reports_before:  # no public API re-adds history entries
        default_bus._history.record(report)
    assert default_bus.get_subscriptions() == subs_before


def test_guide_lifecycle_example_on_module_functions(restore_default_bus: None) -> None:
    from blinker_events import subscribe, unsubscribe_by_source

    calls: list[Event] = []

    # The guide's example, with the handler recording what it got.
    class MyComponent:
        def __init__(self) -> None:
            # Subscribe to events
            subscribe(EventType.SYSTEM_STARTUP, self.on_startup, source="MyComponent")

        def on_startup(self, event: Event) -> None:
            calls.append(event)

        def cleanup(self) -> None:
            # Unsubscribe all callbacks from this component
            unsubscribe_by_source("MyComponent")

    before = blinker_events.get_subscriber_count(EventType.SYSTEM_STARTUP)
    component = MyComponent()
    assert blinker_events.get_subscriber_count(EventType.SYSTEM_STARTUP) == before + 1
    event = Event(EventType.SYSTEM_STARTUP, {"version": "1.0.0"}, "my_component")
    report = blinker_events.publish_sync(event)
    assert calls == [event]
    assert [s.source for s in report.succeeded if s.callback == component.on_startup] == ["MyComponent"]
    component.cleanup()
    assert blinker_events.get_subscriber_count(EventType.SYSTEM_STARTUP) == before
    blinker_events.publish_sync(Event(EventType.SYSTEM_STARTUP))
    assert calls == [event]


def test_guide_lifecycle_example_on_a_bus(bus: EventBus) -> None:
    calls: list[Event] = []

    class MyComponent:
        def __init__(self) -> None:
            bus.subscribe(EventType.SYSTEM_STARTUP, self.on_startup, source="MyComponent")

        def on_startup(self, event: Event) -> None:
            calls.append(event)

        def cleanup(self) -> int:
            return bus.unsubscribe_by_source("MyComponent")

    component = MyComponent()
    assert bus.get_subscriber_count(EventType.SYSTEM_STARTUP) == 1
    event = Event(EventType.SYSTEM_STARTUP, {"version": "1.0.0"}, "my_component")
    bus.publish_sync(event)
    assert calls == [event]
    assert component.cleanup() == 1
    assert bus.get_subscriber_count(EventType.SYSTEM_STARTUP) == 0
    bus.publish_sync(Event(EventType.SYSTEM_STARTUP))
    assert calls == [event]
    assert component.cleanup() == 0


def test_one_function_two_components_keep_separate_tags(bus: EventBus) -> None:
    log: list[Any] = []

    def shared(event: Event) -> None:
        log.append(("shared", event))

    sub_a = bus.subscribe(Demo.PING, shared, source="ComponentA")
    sub_b = bus.subscribe(Demo.PING, shared, source="ComponentB")
    assert sub_a is not sub_b
    assert (sub_a.source, sub_b.source) == ("ComponentA", "ComponentB")
    assert bus.get_subscriber_count(Demo.PING) == 2
    bus.publish_sync(Event(Demo.PING))
    assert _tags(log) == ["shared", "shared"]
    assert bus.unsubscribe_by_source("ComponentA") == 1
    assert bus.get_subscriptions() == [sub_b]
    assert sub_a.active is False
    assert sub_b.active is True
    log.clear()
    bus.publish_sync(Event(Demo.PING))
    assert _tags(log) == ["shared"]


def test_same_bound_method_from_two_components_is_tagged_per_subscription(bus: EventBus) -> None:
    log: list[Any] = []
    component = Recorder(log)
    bus.subscribe(Demo.PING, component.on_event, source="first")
    bus.subscribe(Demo.PING, component.on_event, source="second")
    assert sorted(s.source for s in bus.get_subscriptions()) == ["first", "second"]
    assert bus.unsubscribe_by_source("second") == 1
    assert [s.source for s in bus.get_subscriptions()] == ["first"]


# -- weak and strong holding ---------------------------------------------------


def test_bound_method_is_held_weakly(bus: EventBus) -> None:
    log: list[Any] = []
    component = Recorder(log)
    sub = bus.subscribe(Demo.PING, component.on_event)
    bus.subscribe(Demo.PING, functools.partial(_record, log, "survivor"))
    assert bus.get_subscriber_count(Demo.PING) == 2
    bus.publish_sync(Event(Demo.PING))
    assert _tags(log) == ["method", "survivor"]
    del component
    gc.collect()
    assert sub.active is False
    assert sub.callback is None
    assert bus.get_subscriber_count(Demo.PING) == 1
    assert bus.get_subscriber_count() == 1
    log.clear()
    report = bus.publish_sync(Event(Demo.PING))
    assert _tags(log) == ["survivor"]
    assert len(report.succeeded) == 1


def test_bound_async_method_is_held_weakly(bus: EventBus) -> None:
    log: list[Any] = []
    component = Recorder(log)
    bus.subscribe(Demo.PING, component.on_event_async)
    del component
    gc.collect()
    assert bus.get_subscriber_count(Demo.PING) == 0
    report = bus.publish_sync(Event(Demo.PING))
    assert log == []
    assert report.succeeded == []


def test_lambdas_closures_and_partials_survive_gc(bus: EventBus) -> None:
    log: list[Any] = []

    def make_closure(tag: str) -> Any:
        def closure(event: Event) -> None:
            log.append((tag, event))

        return closure

    class Owner:
        def method(self, event: Event) -> None:
            log.append(("partial-of-method", event))

    bus.subscribe(Demo.PING, lambda event: log.append(("lambda", event)))
    bus.subscribe(Demo.PING, make_closure("closure"))
    bus.subscribe(Demo.PING, functools.partial(_record, log, "partial"))
    bus.subscribe(Demo.PING, functools.partial(Owner().method))
    bus.subscribe(Demo.PING, SyncCallable(log))
    gc.collect()
    gc.collect()
    assert bus.get_subscriber_count(Demo.PING) == 5
    bus.publish_sync(Event(Demo.PING))
    assert _tags(log) == ["lambda", "closure", "partial", "partial-of-method", "sync-call"]


def test_weak_false_keeps_a_bound_method_alive(bus: EventBus) -> None:
    log: list[Any] = []
    component = Recorder(log)
    bus.subscribe(Demo.PING, component.on_event, weak=False)
    del component
    gc.collect()
    assert bus.get_subscriber_count(Demo.PING) == 1
    bus.publish_sync(Event(Demo.PING))
    assert _tags(log) == ["method"]


# -- unsubscribe ---------------------------------------------------------------


def test_unsubscribe_returns_exact_counts(bus: EventBus) -> None:
    def fn(event: Event) -> None:
        pass

    def other(event: Event) -> None:
        pass

    bus.subscribe(Demo.PING, fn, source="a")
    bus.subscribe(Demo.PING, fn, source="b")
    bus.subscribe(Demo.PONG, fn)
    bus.subscribe(None, fn)
    bus.subscribe(Demo.PING, other)
    assert bus.unsubscribe(Demo.OTHER, fn) == 0
    assert bus.unsubscribe(Demo.PING, fn) == 2
    assert bus.unsubscribe(Demo.PING, fn) == 0
    assert bus.get_subscriber_count(Demo.PING) == 2  # other + the catch-all
    assert bus.unsubscribe(None, fn) == 1
    assert bus.unsubscribe(None, fn) == 0
    assert bus.unsubscribe(Demo.PONG, fn) == 1
    assert [s.callback for s in bus.get_subscriptions()] == [other]


def test_unsubscribe_by_source_returns_exact_counts(bus: EventBus) -> None:
    def fn(event: Event) -> None:
        pass

    bus.subscribe(Demo.PING, fn, source="x")
    bus.subscribe(Demo.PONG, lambda e: None, source="x")
    bus.subscribe(None, fn, source="x")
    keep = bus.subscribe(Demo.PING, fn, source="y")
    assert bus.unsubscribe_by_source("nobody") == 0
    assert bus.unsubscribe_by_source("x") == 3
    assert bus.unsubscribe_by_source("x") == 0
    assert bus.get_subscriptions() == [keep]


def test_unsubscribe_with_a_fresh_bound_method_object(bus: EventBus) -> None:
    log: list[Any] = []
    component = Recorder(log)
    bus.subscribe(Demo.PING, component.on_event)
    assert bus.unsubscribe(Demo.PING, component.on_event) == 1
    assert bus.get_subscriber_count(Demo.PING) == 0
    bus.publish_sync(Event(Demo.PING))
    assert log == []


def test_subscription_unsubscribe(bus: EventBus) -> None:
    log: list[Any] = []
    sub = bus.subscribe(Demo.PING, functools.partial(_record, log, "x"))
    wild = bus.subscribe(None, functools.partial(_record, log, "all"))
    assert sub.unsubscribe() is True
    assert sub.unsubscribe() is False
    assert sub.active is False
    assert wild.unsubscribe() is True
    assert bus.get_subscriber_count(Demo.PING) == 0
    assert bus.get_subscriber_count() == 0
    bus.publish_sync(Event(Demo.PING))
    assert log == []
    assert bus.unsubscribe(Demo.PING, sub.callback) == 0  # type: ignore[arg-type]


# -- sender filter and dedupe --------------------------------------------------


def test_sender_filters_by_event_source(bus: EventBus) -> None:
    log: list[Any] = []
    marker = object()
    bus.subscribe(Demo.PING, functools.partial(_record, log, "alpha-only"), sender="alpha")
    bus.subscribe(Demo.PING, functools.partial(_record, log, "marker-only"), sender=marker)
    bus.subscribe(None, functools.partial(_record, log, "all-alpha"), sender="alpha")
    bus.subscribe(Demo.PING, functools.partial(_record, log, "any"))
    bus.publish_sync(Event(Demo.PING, None, "alpha"))
    assert _tags(log) == ["alpha-only", "all-alpha", "any"]
    log.clear()
    bus.publish_sync(Event(Demo.PING, None, "beta"))
    assert _tags(log) == ["any"]
    log.clear()
    bus.publish_sync(Event(Demo.PING, None, marker))
    assert _tags(log) == ["marker-only", "any"]
    log.clear()
    bus.publish_sync(Event(Demo.PING))
    assert _tags(log) == ["any"]


def test_source_tag_does_not_filter_events(bus: EventBus) -> None:
    log: list[Any] = []
    bus.subscribe(Demo.PING, functools.partial(_record, log, "tagged"), source="alpha")
    bus.publish_sync(Event(Demo.PING, None, "beta"))
    assert _tags(log) == ["tagged"]


def test_identical_subscription_is_deduplicated(bus: EventBus) -> None:
    log: list[Any] = []

    def fn(event: Event) -> None:
        log.append(("fn", event))

    first = bus.subscribe(Demo.PING, fn, source="s")
    second = bus.subscribe(Demo.PING, fn, source="s")
    assert first is second
    component = Recorder(log)
    m1 = bus.subscribe(Demo.PING, component.on_event)
    m2 = bus.subscribe(Demo.PING, component.on_event)
    assert m1 is m2
    assert bus.get_subscriber_count(Demo.PING) == 2
    bus.publish_sync(Event(Demo.PING))
    assert _tags(log) == ["fn", "method"]
    assert bus.unsubscribe(Demo.PING, fn) == 1


def test_different_options_give_distinct_subscriptions(bus: EventBus) -> None:
    log: list[Any] = []

    def fn(event: Event) -> None:
        log.append(("fn", event))

    plain = bus.subscribe(Demo.PING, fn)
    with_timeout = bus.subscribe(Demo.PING, fn, timeout=5)
    with_sender = bus.subscribe(Demo.PING, fn, sender="alpha")
    assert len({plain.id, with_timeout.id, with_sender.id}) == 3
    bus.publish_sync(Event(Demo.PING, None, "alpha"))
    assert _tags(log) == ["fn", "fn", "fn"]


# -- plain blinker receivers and blinker signals --------------------------------


def test_plain_blinker_receiver_on_signal_for(bus: EventBus) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append((sender, kwargs))

    bus.signal_for(Demo.PING).connect(receiver)
    assert bus.get_subscriber_count(Demo.PING) == 1
    event = Event(Demo.PING, {"a": 1}, "the-source")
    report = bus.publish_sync(event)
    assert calls == [("the-source", {"event": event})]
    assert [(s.plain, s.callback) for s in report.succeeded] == [(True, receiver)]
    assert bus.unsubscribe(Demo.PING, receiver) == 1
    assert bus.get_subscriber_count(Demo.PING) == 0
    bus.publish_sync(Event(Demo.PING))
    assert len(calls) == 1
    assert bus.unsubscribe(Demo.PING, receiver) == 0


def test_plain_blinker_receiver_ordered_with_subscriptions(bus: EventBus) -> None:
    order: list[str] = []
    bus.subscribe(Demo.PING, lambda e: order.append("first"))

    def plain(sender: Any, **kwargs: Any) -> None:
        order.append("plain")

    bus.signal_for(Demo.PING).connect(plain)
    bus.subscribe(Demo.PING, lambda e: order.append("last"))
    bus.publish_sync(Event(Demo.PING))
    assert order == ["first", "plain", "last"]
    assert bus.get_subscriber_count(Demo.PING) == 3


def test_blinker_signal_object_as_event_type(bus: EventBus) -> None:
    signal = Signal()
    seen: list[Event] = []

    def receiver(event: Event) -> None:
        seen.append(event)

    sub = bus.subscribe(signal, receiver)
    assert bus.signal_for(signal) is signal
    assert bus.get_subscriber_count(signal) == 1
    event = Event(signal, {"x": 1})
    report = bus.publish_sync(event)
    assert seen == [event]
    assert report.succeeded == [sub]
    assert bus.get_history(signal) == [event]
    other = Signal()
    bus.publish_sync(Event(other))
    assert seen == [event]
    assert bus.unsubscribe(signal, receiver) == 1
    bus.publish_sync(Event(signal))
    assert seen == [event]


def test_builtin_bound_method_dedupes_and_unsubscribes(bus: EventBus) -> None:
    seen: list[Event] = []
    first = bus.subscribe(Demo.PING, seen.append)
    second = bus.subscribe(Demo.PING, seen.append)
    event = Event(Demo.PING)
    bus.publish_sync(event)
    assert seen == [event]
    assert first is second
    assert bus.unsubscribe(Demo.PING, seen.append) == 1
    assert bus.get_subscriber_count(Demo.PING) == 0


# -- get_subscriptions(disabled=...) ---------------------------------------------


def test_get_subscriptions_filters_by_disabled_state() -> None:
    bus = EventBus(failure_threshold=1)
    try:

        def bad(event: Event) -> None:
            raise RuntimeError("boom")

        def good(event: Event) -> None:
            pass

        bad_sub = bus.subscribe(Demo.PING, bad)
        good_sub = bus.subscribe(Demo.PING, good)
        assert bus.get_subscriptions(disabled=True) == []
        assert bus.get_subscriptions(disabled=False) == [bad_sub, good_sub]
        report = bus.publish_sync(Event(Demo.PING))
        assert list(report.disabled) == [bad_sub]
        assert bad_sub.disabled is True
        assert bus.get_subscriptions(disabled=True) == [bad_sub]
        assert bus.get_subscriptions(disabled=False) == [good_sub]
        assert bus.get_subscriptions(Demo.PING, disabled=True) == [bad_sub]
        assert bus.get_subscriptions() == [bad_sub, good_sub]
        bad_sub.enable()
        assert bus.get_subscriptions(disabled=True) == []
        assert bus.get_subscriptions(disabled=False) == [bad_sub, good_sub]
    finally:
        assert bus.shutdown(timeout=10) == 0


class _Unreadable:
    """Like a werkzeug LocalProxy outside its context: every attribute
    looked up on the instance raises (``error``: what)."""

    error: type[BaseException] = RuntimeError

    def __getattr__(self, name: str) -> object:
        raise type(self).error(f"working outside of context: {name}")


class _UnreadableSync(_Unreadable):
    def __call__(self, event: Event) -> None:
        seen.append(("sync", event))


class _UnreadableAsync(_Unreadable):
    async def __call__(self, event: Event) -> None:
        seen.append(("async", event))


seen: list[tuple[str, Event]] = []


@pytest.mark.parametrize("error", [RuntimeError, SystemExit])
def test_a_callable_whose_attributes_raise_subscribes_named_by_its_type(
    bus: EventBus, error: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen.clear()
    monkeypatch.setattr(_Unreadable, "error", error)
    sync_receiver, async_receiver = _UnreadableSync(), _UnreadableAsync()
    sync_sub = bus.subscribe(Demo.PING, sync_receiver)
    async_sub = bus.subscribe(Demo.PING, async_receiver)
    assert sync_sub.name == f"{__name__}._UnreadableSync"
    assert async_sub.name == f"{__name__}._UnreadableAsync"
    assert (sync_sub.is_async, async_sub.is_async) == (False, True)
    event = Event(Demo.PING)
    report = bus.publish_sync(event)
    assert report.succeeded == [sync_sub, async_sub]
    assert seen == [("sync", event), ("async", event)]
    assert bus.unsubscribe(Demo.PING, sync_receiver) == 1


class _Incomparable:
    """Like a detached ORM instance: comparing it raises (``error``: what;
    SystemExit too, which must not end another owner's lookup either)."""

    def __init__(self, error: type[BaseException] = RuntimeError) -> None:
        self.error = error

    def __eq__(self, other: object) -> bool:
        raise self.error("instance is detached")

    __hash__ = object.__hash__


@pytest.mark.parametrize("error", [RuntimeError, SystemExit])
def test_unsubscribe_by_source_passes_over_tags_that_cannot_be_compared(
    bus: EventBus, error: type[BaseException]
) -> None:
    def first(event: Event) -> None: ...

    def second(event: Event) -> None: ...

    def third(event: Event) -> None: ...

    incomparable, other = _Incomparable(error), _Incomparable(error)
    owned = [bus.subscribe(Demo.PING, first, source="owner"), bus.subscribe(Demo.PONG, second, source="owner")]
    theirs = bus.subscribe(Demo.PING, third, source=incomparable)
    bus.subscribe(Demo.PING, lambda event: None, source=other)
    assert bus.unsubscribe_by_source("owner") == 2
    assert not any(sub.active for sub in owned)
    # The caller's own tag may be one too: it is found by identity.
    assert bus.unsubscribe_by_source(incomparable) == 1
    assert not theirs.active
    assert bus.get_subscriber_count(Demo.PING) == 1


_names = itertools.count()


def _signal() -> NamedSignal:
    """A blinker signal the bus does not own (not in blinker's namespace either)."""
    return NamedSignal(f"foreign-{next(_names)}")


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


# failure mode 2: the source tag of a bound method
def test_bound_method_subscribes_with_a_source_tag(bus: EventBus) -> None:
    """`subscribe(T, self.on_startup, source="MyComponent")` crashed because the
    source tag was stored as an attribute on the callback, and bound methods take
    no attributes. Storing the tag on the callback also meant one function
    subscribed by two components kept only the last tag."""
    seen: list[str] = []

    class Component:
        def __init__(self, name: str) -> None:
            self.name = name
            self.sub = bus.subscribe(EventType.SYSTEM_STARTUP, self.on_startup, source=name)

        def on_startup(self, event: Event) -> None:
            seen.append(self.name)

    component = Component("MyComponent")
    assert component.sub.source == "MyComponent"
    bus.publish_sync(Event(EventType.SYSTEM_STARTUP))
    assert seen == ["MyComponent"]
    assert bus.unsubscribe_by_source("MyComponent") == 1
    bus.publish_sync(Event(EventType.SYSTEM_STARTUP))
    assert seen == ["MyComponent"]

    def shared(event: Event) -> None:
        seen.append("shared")

    tag_a = bus.subscribe(Demo.PING, shared, source="A")
    tag_b = bus.subscribe(Demo.PING, shared, source="B")
    assert tag_a is not tag_b
    assert (tag_a.source, tag_b.source) == ("A", "B")
    assert bus.unsubscribe_by_source("A") == 1
    assert bus.get_subscriptions(Demo.PING) == [tag_b]
    assert bus.unsubscribe_by_source("B") == 1

    # a collected component unsubscribes itself (bound methods are held weakly)
    Component("Transient")
    gc.collect()
    assert bus.get_subscriber_count(EventType.SYSTEM_STARTUP) == 0


# failure mode 2 (companion)
def test_bound_builtin_methods_are_identified_like_bound_methods(bus: EventBus) -> None:
    """Companion of the bullet above: `subscribe(T, seen.append)` twice is one
    subscription, and `unsubscribe(T, seen.append)` removes it."""
    seen: list[Event] = []
    first = bus.subscribe(Demo.PING, seen.append)
    again = bus.subscribe(Demo.PING, seen.append)
    assert again is first
    bus.publish_sync(Event(Demo.PING))
    assert len(seen) == 1
    assert bus.unsubscribe(Demo.PING, seen.append) == 1
    assert bus.get_subscriber_count(Demo.PING) == 0


# failure mode 3: subscribe to all events
def test_catch_all_subscription_covers_types_defined_later(bus: EventBus) -> None:
    """ "Subscribe to all events" only covered the event types that existed at that
    moment; types defined later were missed."""
    seen: list[Any] = []
    sub = bus.subscribe(None, lambda e: seen.append(e.event_type))

    class DefinedLater(EventType):
        NEW = auto()

    for event_type in (DefinedLater.NEW, "a-string-type-never-seen", Demo.PING):
        assert bus.publish_sync(Event(event_type)).succeeded == [sub]
    assert seen == [DefinedLater.NEW, "a-string-type-never-seen", Demo.PING]


# failure mode 4: an object with async __call__
@pytest.mark.asyncio
async def test_object_with_async_call_is_awaited(bus: EventBus) -> None:
    """An object with `async def __call__` was treated as sync: it was never awaited
    ("coroutine was never awaited")."""

    class Handler:
        def __init__(self) -> None:
            self.done: list[str] = []

        async def __call__(self, event: Event) -> None:
            await asyncio.sleep(0)
            self.done.append(event.data["via"])

    async def with_prefix(prefix: str, event: Event) -> None:
        await asyncio.sleep(0)
        handler.done.append(prefix + event.data["via"])

    handler = Handler()
    sub = bus.subscribe(Demo.PING, handler)
    partial_sub = bus.subscribe(Demo.PING, functools.partial(with_prefix, "partial-"))
    assert sub.is_async is True
    assert partial_sub.is_async is True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await bus.publish(Event(Demo.PING, {"via": "await"}))
        await asyncio.to_thread(bus.publish_sync, Event(Demo.PING, {"via": "sync"}))
        await asyncio.wrap_future(bus.publish_nowait(Event(Demo.PING, {"via": "nowait"})))
        gc.collect()
    assert sorted(handler.done) == sorted(
        ["await", "sync", "nowait", "partial-await", "partial-sync", "partial-nowait"]
    )
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []


# failure mode 19: subscriptions made while disabled
def test_subscriptions_made_while_disabled_are_kept(bus: EventBus) -> None:
    """Subscriptions made while the bus was disabled were silently dropped."""
    seen: list[Event] = []
    bus.disable()
    assert bus.is_enabled() is False

    def receiver(event: Event) -> None:
        seen.append(event)

    def catch_all(event: Event) -> None:
        seen.append(event)

    sub = bus.subscribe(Demo.PING, receiver)
    wildcard = bus.subscribe(None, catch_all)
    assert bus.get_subscriber_count(Demo.PING) == 2
    report = bus.publish_sync(Event(Demo.PING))
    assert (report.succeeded, seen, bus.get_history()) == ([], [], [])
    bus.enable()
    event = Event(Demo.PING)
    assert bus.publish_sync(event).succeeded == [sub, wildcard]
    assert seen == [event, event]
