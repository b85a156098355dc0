"""The public surface, pinned: what ``blinker_events`` exports and what an
``EventBus`` offers. Growing or shrinking either is a decision, made here."""

from __future__ import annotations

import blinker_events
from blinker_events import EventBus, EventTimeoutError

EXPORTS = {
    "ANY", "CircularEventError", "DeliveryReport", "DispatchContextError", "Event", "EventBus",
    "EventStream", "EventSystemError", "EventTimeoutError", "EventType", "EventTypeLike", "NamedSignal", "Namespace",
    "QueueFullError", "Signal", "Subscription", "SystemEventType", "Waiter", "__version__", "bridge", "clear_history",
    "default_bus", "default_namespace", "disable", "enable", "event_type_name", "expect", "get_delivery_reports",
    "get_history", "get_subscriber_count", "get_subscriptions", "is_enabled", "publish", "publish_nowait",
    "publish_sync", "set_failure_threshold", "set_history_size", "set_propagate_exceptions", "set_timeout",
    "shutdown", "signal", "signal_for", "stream", "subscribe", "unbridge", "unsubscribe", "unsubscribe_by_source",
    "wait_for",
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
    "set_sync_executor",
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
    assert repr(EventTimeoutError).startswith("<class 'blinker_events.EventTimeoutError'")


def test_event_bus_is_a_context_manager_that_shuts_down_on_exit() -> None:
    seen: list[str] = []
    with EventBus() as bus:
        bus.subscribe("ping", lambda event: seen.append(event.event_type))
        future = bus.publish_nowait(blinker_events.Event("ping"))
    assert future.done()  # shutdown delivered what was queued
    assert seen == ["ping"]
