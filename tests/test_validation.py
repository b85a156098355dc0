"""Bad input (issue item 12): a TypeError/ValueError at call time that names
the argument, and no state changed by the failed call."""

from __future__ import annotations

import math
from typing import Any

import pytest

from blinker_events import Event, EventBus

from .conftest import Demo

# (value, exception) pairs for every timeout-taking argument.
BAD_TIMEOUTS: list[tuple[Any, type[Exception]]] = [
    (0, ValueError),
    (0.0, ValueError),
    (-1, ValueError),
    (-0.5, ValueError),
    (math.inf, ValueError),
    (-math.inf, ValueError),
    (math.nan, ValueError),
    ("1", TypeError),
    (True, TypeError),
    (False, TypeError),
    ([1], TypeError),
]
TIMEOUT_IDS = ["0", "0.0", "-1", "-0.5", "inf", "-inf", "nan", "str", "True", "False", "list"]

BAD_EVENT_TYPES: list[Any] = [42, 1.5, object(), b"bytes", ("tuple",), Demo]
NOT_EVENTS: list[Any] = [None, Demo.PING, "ping", {"event_type": "ping"}, 42, object()]


def _receiver(event: Event) -> None:
    pass


# -- EventBus(...) ---------------------------------------------------------------


@pytest.mark.parametrize(("value", "exc"), BAD_TIMEOUTS, ids=TIMEOUT_IDS)
def test_constructor_rejects_bad_timeout(value: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=r"\btimeout\b"):
        EventBus(timeout=value)


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"failure_threshold": 0}, ValueError, "failure_threshold"),
        ({"failure_threshold": -3}, ValueError, "failure_threshold"),
        ({"failure_threshold": 1.5}, TypeError, "failure_threshold"),
        ({"failure_threshold": True}, TypeError, "failure_threshold"),
        ({"queue_size": 0}, ValueError, "queue_size"),
        ({"queue_size": -1}, ValueError, "queue_size"),
        ({"queue_size": "10"}, TypeError, "queue_size"),
        ({"history_size": -1}, ValueError, "history_size"),
        ({"history_size": 2.0}, TypeError, "history_size"),
        ({"history_size": None}, TypeError, "history_size"),
        ({"overflow": "bogus"}, ValueError, "overflow"),
        ({"overflow": None}, ValueError, "overflow"),
        ({"overflow": "BLOCK"}, ValueError, "overflow"),
        ({"max_depth": 0}, ValueError, "max_depth"),
        ({"max_depth": -1}, ValueError, "max_depth"),
        ({"max_depth": "16"}, TypeError, "max_depth"),
        ({"propagate_exceptions": 1}, TypeError, "propagate_exceptions"),
        ({"propagate_exceptions": "yes"}, TypeError, "propagate_exceptions"),
        ({"sync_executor": "bogus"}, ValueError, "sync_executor"),
        ({"name": 5}, TypeError, "name"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs: dict[str, Any], exc: type[Exception], name: str) -> None:
    with pytest.raises(exc, match=rf"\b{name}\b"):
        EventBus(**kwargs)


def test_constructor_accepts_boundary_values() -> None:
    bus = EventBus(timeout=0.001, failure_threshold=1, queue_size=1, history_size=0, max_depth=1, overflow="raise")
    try:
        assert bus.timeout == 0.001
        assert bus.failure_threshold == 1
        assert bus.history_size == 0
        assert bus.max_depth == 1
    finally:
        assert bus.shutdown(timeout=10) == 0


# -- setters: error names the argument, old value stays --------------------------


@pytest.mark.parametrize(("value", "exc"), BAD_TIMEOUTS, ids=TIMEOUT_IDS)
def test_set_timeout_rejects_and_keeps_old_value(bus: EventBus, value: Any, exc: type[Exception]) -> None:
    bus.set_timeout(2.5)
    with pytest.raises(exc, match=r"\bseconds\b"):
        bus.set_timeout(value)
    assert bus.timeout == 2.5
    bus.set_timeout(None)
    with pytest.raises(exc, match=r"\bseconds\b"):
        bus.set_timeout(value)
    assert bus.timeout is None


@pytest.mark.parametrize(("value", "exc"), [(0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError)])
def test_set_failure_threshold_rejects_and_keeps_old_value(bus: EventBus, value: Any, exc: type[Exception]) -> None:
    bus.set_failure_threshold(5)
    with pytest.raises(exc, match=r"\bn\b"):
        bus.set_failure_threshold(value)
    assert bus.failure_threshold == 5


@pytest.mark.parametrize(("value", "exc"), [(-1, ValueError), (1.5, TypeError), (None, TypeError), ("3", TypeError)])
def test_set_history_size_rejects_and_keeps_history(bus: EventBus, value: Any, exc: type[Exception]) -> None:
    bus.set_history_size(3)
    events = [Event(Demo.PING, {"i": i}) for i in range(3)]
    for event in events:
        bus.publish_sync(event)
    with pytest.raises(exc, match=r"\bn\b"):
        bus.set_history_size(value)
    assert bus.history_size == 3
    assert bus.get_history() == events


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_set_propagate_exceptions_rejects_non_bool(bus: EventBus, value: Any) -> None:
    with pytest.raises(TypeError, match=r"\bflag\b"):
        bus.set_propagate_exceptions(value)
    assert bus.propagate_exceptions is False


@pytest.mark.parametrize(("value", "exc"), [(0, ValueError), (-2, ValueError), (3.0, TypeError)])
def test_set_max_depth_rejects_and_keeps_old_value(bus: EventBus, value: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=r"\bn\b"):
        bus.set_max_depth(value)
    assert bus.max_depth == 16


@pytest.mark.parametrize(("value", "exc"), BAD_TIMEOUTS, ids=TIMEOUT_IDS)
def test_shutdown_rejects_bad_timeout(bus: EventBus, value: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=r"\btimeout\b"):
        bus.shutdown(timeout=value)


# -- subscribe -------------------------------------------------------------------


def _state(bus: EventBus) -> tuple[int, int, int, list[Any]]:
    return (
        bus.get_subscriber_count(),
        bus.get_subscriber_count(Demo.PING),
        bus.get_subscriber_count(None),
        [(s.id, s.callback) for s in bus.get_subscriptions()],
    )


@pytest.fixture
def busy_bus(bus: EventBus) -> EventBus:
    """The bus fixture with a couple of subscriptions already present."""
    bus.subscribe(Demo.PING, _receiver, source="existing")
    bus.subscribe(None, lambda e: None)
    return bus


@pytest.mark.parametrize("callback", [42, "not callable", object(), [_receiver]])
def test_subscribe_rejects_non_callable(busy_bus: EventBus, callback: Any) -> None:
    before = _state(busy_bus)
    with pytest.raises(TypeError, match=r"\bcallback\b"):
        busy_bus.subscribe(Demo.PING, callback)
    assert _state(busy_bus) == before


@pytest.mark.parametrize(
    "callback",
    [
        42,
        object(),
        None,
    ],
)
def test_decorator_rejects_non_callable(busy_bus: EventBus, callback: Any) -> None:
    before = _state(busy_bus)
    decorator = busy_bus.subscribe(Demo.PING)
    with pytest.raises(TypeError, match=r"\bcallback\b"):
        decorator(callback)
    assert _state(busy_bus) == before


@pytest.mark.parametrize("event_type", BAD_EVENT_TYPES)
def test_subscribe_rejects_bad_event_type(busy_bus: EventBus, event_type: Any) -> None:
    before = _state(busy_bus)
    with pytest.raises(TypeError, match=r"\bevent_type\b"):
        busy_bus.subscribe(event_type, _receiver)
    assert _state(busy_bus) == before


@pytest.mark.parametrize(("value", "exc"), BAD_TIMEOUTS, ids=TIMEOUT_IDS)
def test_subscribe_rejects_bad_timeout(busy_bus: EventBus, value: Any, exc: type[Exception]) -> None:
    before = _state(busy_bus)
    with pytest.raises(exc, match=r"\btimeout\b"):
        busy_bus.subscribe(Demo.PING, lambda e: None, timeout=value)
    assert _state(busy_bus) == before


@pytest.mark.parametrize(("kwargs", "name"), [({"reentrant": 1}, "reentrant"), ({"weak": "no"}, "weak")])
def test_subscribe_rejects_non_bool_flags(busy_bus: EventBus, kwargs: dict[str, Any], name: str) -> None:
    before = _state(busy_bus)
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        busy_bus.subscribe(Demo.PING, lambda e: None, **kwargs)
    assert _state(busy_bus) == before


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "name"),
    [
        ((42,), {}, TypeError, "event_type"),
        ((object(),), {}, TypeError, "event_type"),
        ((Demo.PING,), {"timeout": 0}, ValueError, "timeout"),
        ((Demo.PING,), {"timeout": math.nan}, ValueError, "timeout"),
        ((Demo.PING,), {"timeout": "1"}, TypeError, "timeout"),
        ((Demo.PING,), {"reentrant": "yes"}, TypeError, "reentrant"),
    ],
)
def test_decorator_with_bad_args_raises_at_factory_time(
    busy_bus: EventBus, args: tuple[Any, ...], kwargs: dict[str, Any], exc: type[Exception], name: str
) -> None:
    before = _state(busy_bus)
    with pytest.raises(exc, match=rf"\b{name}\b"):
        busy_bus.subscribe(*args, **kwargs)  # no function applied yet
    assert _state(busy_bus) == before


def test_failed_subscribe_leaves_delivery_unchanged(busy_bus: EventBus) -> None:
    seen: list[str] = []
    with pytest.raises(ValueError):
        busy_bus.subscribe(Demo.PONG, lambda e: seen.append("bad"), timeout=-1)
    with pytest.raises(TypeError):
        busy_bus.subscribe(42, lambda e: seen.append("bad"))  # type: ignore[call-overload]
    report = busy_bus.publish_sync(Event(Demo.PONG))
    assert seen == []
    assert len(report.succeeded) == 1  # only the catch-all of the fixture


# -- unsubscribe and introspection ---------------------------------------------------


@pytest.mark.parametrize("event_type", BAD_EVENT_TYPES)
def test_unsubscribe_rejects_bad_event_type(busy_bus: EventBus, event_type: Any) -> None:
    before = _state(busy_bus)
    with pytest.raises(TypeError, match=r"\bevent_type\b"):
        busy_bus.unsubscribe(event_type, _receiver)
    assert _state(busy_bus) == before


@pytest.mark.parametrize("callback", [42, "x", object()])
def test_unsubscribe_rejects_non_callable(busy_bus: EventBus, callback: Any) -> None:
    before = _state(busy_bus)
    with pytest.raises(TypeError, match=r"\bcallback\b"):
        busy_bus.unsubscribe(Demo.PING, callback)
    assert _state(busy_bus) == before


@pytest.mark.parametrize("event_type", BAD_EVENT_TYPES)
def test_introspection_rejects_bad_event_type(bus: EventBus, event_type: Any) -> None:
    with pytest.raises(TypeError, match=r"\bevent_type\b"):
        bus.get_subscriber_count(event_type)
    with pytest.raises(TypeError, match=r"\bevent_type\b"):
        bus.get_history(event_type)
    with pytest.raises(TypeError, match=r"\bevent_type\b"):
        bus.signal_for(event_type)


@pytest.mark.parametrize("limit", [-1, 1.5, "2", True])
def test_get_history_rejects_bad_limit(bus: EventBus, limit: Any) -> None:
    event = Event(Demo.PING)
    bus.publish_sync(event)
    with pytest.raises((TypeError, ValueError), match=r"\blimit\b"):
        bus.get_history(limit=limit)
    assert bus.get_history() == [event]


# -- publishing ---------------------------------------------------------------------


@pytest.mark.parametrize("not_event", NOT_EVENTS)
def test_publish_sync_rejects_non_event(bus: EventBus, not_event: Any) -> None:
    seen: list[Event] = []
    bus.subscribe(None, seen.append)
    with pytest.raises(TypeError, match=r"\bevent\b"):
        bus.publish_sync(not_event)
    assert seen == []
    assert bus.get_history() == []


@pytest.mark.asyncio
@pytest.mark.parametrize("not_event", NOT_EVENTS)
async def test_publish_rejects_non_event(bus: EventBus, not_event: Any) -> None:
    seen: list[Event] = []
    bus.subscribe(None, seen.append)
    with pytest.raises(TypeError, match=r"\bevent\b"):
        await bus.publish(not_event)
    assert seen == []
    assert bus.get_history() == []


@pytest.mark.parametrize("not_event", NOT_EVENTS)
def test_publish_nowait_rejects_non_event(bus: EventBus, not_event: Any) -> None:
    seen: list[Event] = []
    bus.subscribe(None, seen.append)
    with pytest.raises(TypeError, match=r"\bevent\b"):
        bus.publish_nowait(not_event)
    assert bus.stats()["queued"] == 0
    assert bus.shutdown(timeout=10) == 0
    assert seen == []
    assert bus.get_history() == []


@pytest.mark.parametrize(("value", "exc"), BAD_TIMEOUTS, ids=TIMEOUT_IDS)
def test_publish_sync_rejects_bad_timeout(bus: EventBus, value: Any, exc: type[Exception]) -> None:
    seen: list[Event] = []
    bus.subscribe(Demo.PING, seen.append)
    with pytest.raises(exc, match=r"\btimeout\b"):
        bus.publish_sync(Event(Demo.PING), timeout=value)
    assert seen == []
    assert bus.get_history() == []


@pytest.mark.asyncio
@pytest.mark.parametrize(("value", "exc"), BAD_TIMEOUTS, ids=TIMEOUT_IDS)
async def test_publish_rejects_bad_timeout(bus: EventBus, value: Any, exc: type[Exception]) -> None:
    seen: list[Event] = []
    bus.subscribe(Demo.PING, seen.append)
    with pytest.raises(exc, match=r"\btimeout\b"):
        await bus.publish(Event(Demo.PING), timeout=value)
    assert seen == []
    assert bus.get_history() == []


@pytest.mark.parametrize(("value", "exc"), BAD_TIMEOUTS, ids=TIMEOUT_IDS)
def test_publish_nowait_rejects_bad_timeout(bus: EventBus, value: Any, exc: type[Exception]) -> None:
    seen: list[Event] = []
    bus.subscribe(Demo.PING, seen.append)
    with pytest.raises(exc, match=r"\btimeout\b"):
        bus.publish_nowait(Event(Demo.PING), timeout=value)
    assert bus.stats()["queued"] == 0
    assert bus.stats()["rejected"] == 0
    assert bus.shutdown(timeout=10) == 0
    assert seen == []
    assert bus.get_history() == []


def test_bad_publish_does_not_count_toward_auto_disable() -> None:
    bus = EventBus(failure_threshold=1)
    try:
        sub = bus.subscribe(Demo.PING, lambda e: None)
        for _ in range(3):
            with pytest.raises(ValueError):
                bus.publish_sync(Event(Demo.PING), timeout=-1)
        assert sub.failures == 0
        assert sub.disabled is False
    finally:
        assert bus.shutdown(timeout=10) == 0


# -- Event ----------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", BAD_EVENT_TYPES)
def test_event_rejects_bad_event_type(event_type: Any) -> None:
    with pytest.raises(TypeError, match=r"\bevent_type\b"):
        Event(event_type)


@pytest.mark.parametrize("data", [[("a", 1)], "text", 3, b"x"])
def test_event_rejects_bad_data(data: Any) -> None:
    with pytest.raises(TypeError, match=r"\bdata\b"):
        Event(Demo.PING, data)


def test_configure_checks_every_setting_before_changing_any(bus: EventBus) -> None:
    bus.configure(timeout=2.0, history_size=5, overflow="raise")
    assert (bus.timeout, bus.history_size, bus.overflow) == (2.0, 5, "raise")
    with pytest.raises(ValueError, match="max_depth"):
        bus.configure(timeout=9.0, max_depth=0)
    with pytest.raises(TypeError, match=r"unknown setting.*timeuot"):
        bus.configure(timeuot=1.0)
    assert (bus.timeout, bus.max_depth) == (2.0, 16)


def test_unguard_and_unbridge_refuse_what_is_not_a_signal(bus: EventBus) -> None:
    with pytest.raises(TypeError, match="signal"):
        bus.unguard(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="signal"):
        bus.unbridge(3)  # type: ignore[arg-type]
