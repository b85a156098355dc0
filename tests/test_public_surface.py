"""The public surface, pinned: what ``blinker_events`` exports and what an
``EventBus`` offers. Growing or shrinking either is a decision, made here."""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import blinker_events
from blinker_events import Event, EventBus, EventTimeoutError

ROOT = Path(__file__).resolve().parent.parent

EXPORTS = {
    "ANY", "CircularEventError", "DeliveryReport", "DispatchContextError", "Event", "EventBus", "EventStream",
    "EventSystemError", "EventTimeoutError", "EventType", "EventTypeLike", "NamedSignal", "Namespace",
    "QueueFullError", "Signal", "Subscription", "SystemEventType", "TypedEvent", "Waiter", "__version__", "bridge",
    "clear_history", "configure", "default_bus", "default_namespace", "disable", "enable", "event_type_name",
    "expect", "get_delivery_reports", "get_history", "get_subscriber_count", "get_subscriptions", "is_enabled",
    "publish", "publish_nowait", "publish_sync", "set_failure_threshold", "set_history_size", "set_max_depth",
    "set_overflow", "set_propagate_exceptions", "set_queue_size", "set_slow_after", "set_sync_executor", "set_timeout",
    "shutdown",
    "signal", "signal_for", "stats", "stream", "subscribe", "unbridge", "unsubscribe", "unsubscribe_by_source",
    "wait_for",
}  # fmt: skip

#: The bus's methods the module offers too, acting on ``default_bus``. The
#: rest (``guard``, ``set_dispatch_context``, the outlets, the read-only
#: settings) are used on a bus: ``blinker_events.default_bus.settings``.
MODULE_FUNCTIONS = {
    "publish", "publish_sync", "publish_nowait",
    "subscribe", "unsubscribe", "unsubscribe_by_source", "get_subscriptions", "get_subscriber_count",
    "signal_for", "bridge", "unbridge",
    "configure", "set_timeout", "set_propagate_exceptions", "set_failure_threshold", "set_history_size",
    "set_max_depth", "set_queue_size", "set_overflow", "set_sync_executor", "set_slow_after",
    "get_history", "get_delivery_reports", "clear_history", "is_enabled", "enable", "disable", "stats",
    "shutdown", "expect", "wait_for", "stream",
}  # fmt: skip

BUS_MEMBERS = {
    # publishing
    "publish", "publish_sync", "publish_nowait",
    # waiting for events
    "expect", "wait_for", "stream",
    # who listens
    "subscribe", "unsubscribe", "unsubscribe_by_source", "get_subscriptions", "get_subscriber_count",
    "signal_for", "guard", "unguard", "bridge", "unbridge",
    # settings
    "settings", "configure", "timeout", "propagate_exceptions", "failure_threshold", "history_size",
    "max_depth", "queue_size", "overflow", "sync_executor", "set_timeout", "set_propagate_exceptions",
    "set_failure_threshold", "set_history_size", "set_max_depth", "set_queue_size", "set_overflow",
    "set_sync_executor", "slow_after", "set_slow_after",
    # integrations
    "add_outlet", "remove_outlet", "set_dispatch_context", "dispatch_context",
    # introspection and lifecycle
    "get_history", "get_delivery_reports", "clear_history", "is_enabled", "enable", "disable", "stats",
    "shutdown",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(blinker_events.__all__) == EXPORTS
    for name in blinker_events.__all__:
        assert hasattr(blinker_events, name), name


def test_the_testing_package_exports_are_pinned() -> None:
    import blinker_events.testing

    names = {"Capture", "Isolation", "ReceiverFailureWarning", "capture", "isolated"}
    assert set(blinker_events.testing.__all__) == names


def test_event_bus_public_members_are_pinned() -> None:
    assert {name for name in dir(EventBus) if not name.startswith("_")} == BUS_MEMBERS


def test_version_is_a_string() -> None:
    assert isinstance(blinker_events.__version__, str)
    assert blinker_events.__version__


def test_public_classes_name_the_package_as_their_module() -> None:
    assert EventTimeoutError.__module__ == "blinker_events"
    assert EventBus.__module__ == "blinker_events"
    assert blinker_events.TypedEvent.__module__ == "blinker_events"
    assert repr(EventTimeoutError).startswith("<class 'blinker_events.EventTimeoutError'")


def test_event_bus_is_a_context_manager_that_shuts_down_on_exit() -> None:
    seen: list[str] = []
    with EventBus() as bus:
        bus.subscribe("ping", lambda event: seen.append(event.event_type))
        future = bus.publish_nowait(blinker_events.Event("ping"))
    assert future.done()  # shutdown delivered what was queued
    assert seen == ["ping"]


def test_each_module_function_is_the_default_bus_method_of_that_name() -> None:
    for name in MODULE_FUNCTIONS:
        function = getattr(blinker_events, name)
        assert function.__self__ is blinker_events.default_bus, name
        assert function.__func__ is getattr(EventBus, name), name
    bus_methods = {name for name in BUS_MEMBERS if callable(getattr(blinker_events.default_bus, name))}
    assert bus_methods >= MODULE_FUNCTIONS
    assert bus_methods - MODULE_FUNCTIONS == {"guard", "unguard", "add_outlet", "remove_outlet", "set_dispatch_context"}


@pytest.fixture
def default_settings_restored() -> Iterator[EventBus]:
    bus = blinker_events.default_bus
    before = bus.settings
    yield bus
    bus.configure(**dataclasses.asdict(before))
    assert bus.settings == before


def test_module_settings_functions_change_the_default_bus(default_settings_restored: EventBus) -> None:
    bus = default_settings_restored
    blinker_events.configure(history_size=7, failure_threshold=9)
    blinker_events.set_max_depth(5)
    blinker_events.set_queue_size(11)
    blinker_events.set_overflow("drop_oldest")
    blinker_events.set_sync_executor("thread_sensitive")
    settings = bus.settings
    assert (settings.history_size, settings.failure_threshold, settings.max_depth) == (7, 9, 5)
    assert (settings.queue_size, settings.overflow, settings.sync_executor) == (11, "drop_oldest", "thread_sensitive")
    with pytest.raises(ValueError, match=r"^policy must be one of 'block', 'raise', 'drop_oldest', not 'sometimes'$"):
        blinker_events.set_overflow("sometimes")
    assert bus.settings == settings


def test_module_stats_are_the_default_bus_counters() -> None:
    bus = blinker_events.default_bus
    before = blinker_events.stats()
    assert before == bus.stats()
    sub = blinker_events.subscribe("surface-stats", lambda event: None)
    try:
        assert blinker_events.stats()["subscriptions"] == before["subscriptions"] + 1
        assert EventBus().stats()["subscriptions"] == 0
    finally:
        sub.unsubscribe()
    blinker_events.publish_sync(Event("surface-stats"))
    assert bus.get_history("surface-stats")
    blinker_events.clear_history()


#: ``blinker_events.<name>`` (and deeper) as the README and the docs write it.
DOTTED = re.compile(r"\bblinker_events(?:\.[A-Za-z_]\w*)+")


#: What the package writes as a string ``"blinker_events.<...>"``: span
#: attribute and metric names (docs/observability.md), which share the
#: prefix but name no Python object.
TELEMETRY = re.compile(r"\"(blinker_events(?:\.[A-Za-z_]\w*)+)\"")


def documented_names() -> set[str]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {name for page in pages if page.exists() for name in DOTTED.findall(page.read_text())}


def emitted_names() -> set[str]:
    sources = (ROOT / "blinker_events").rglob("*.py")
    return {name for source in sources for name in TELEMETRY.findall(source.read_text())}


def resolve(dotted: str) -> Any:
    """The object ``dotted`` names: the longest importable module prefix,
    then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(dotted)


def test_every_name_the_readme_and_docs_write_exists() -> None:
    names = documented_names()
    assert "blinker_events.default_bus" in names
    missing = []
    emitted = emitted_names()
    for dotted in sorted(names):
        try:
            resolve(dotted)
        except (ImportError, AttributeError):
            if dotted not in emitted:  # a span attribute or metric name is no Python name
                missing.append(dotted)
    assert missing == []


def test_the_name_check_fails_for_a_name_that_does_not_exist() -> None:
    with pytest.raises(AttributeError):
        resolve("blinker_events.set_dispatch_context")
    assert resolve("blinker_events.redis.RedisBridge").__name__ == "RedisBridge"
