"""A hypothesis state machine: subscribe / unsubscribe / unsubscribe_by_source /
publish_sync / disable / enable / set_history_size / clear_history against a
plain Python model of who should be called, in which order, and what the
history holds."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from blinker_events import Event, EventBus

from .conftest import Demo

SUBSCRIBE_TYPES: tuple[Enum | None, ...] = (Demo.PING, Demo.PONG, None)  # None: every event type
PUBLISH_TYPES: tuple[Enum, ...] = (Demo.PING, Demo.PONG, Demo.OTHER)
NAMES = ("a", "b", "c")
SOURCES = (None, "x", "y")
# A model subscription: (event_type or None, callback name, source tag). The
# bus dedupes identical subscriptions, so the model holds each key once, in
# the order it was first made (the delivery order).
Key = tuple[Enum | None, str, str | None]


class EventBusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.bus = EventBus()
        self.calls: list[str] = []
        self.callbacks: dict[str, Callable[[Event], None]] = {name: self._make(name) for name in NAMES}
        self.subs: list[Key] = []
        self.enabled = True
        self.history_size = 1000
        self.history: list[Event] = []

    def _make(self, name: str) -> Callable[[Event], None]:
        calls = self.calls

        def callback(event: Event) -> None:
            calls.append(name)

        return callback

    def teardown(self) -> None:
        assert self.bus.shutdown(timeout=10) == 0

    # -- rules -------------------------------------------------------------

    @rule(event_type=st.sampled_from(SUBSCRIBE_TYPES), name=st.sampled_from(NAMES), source=st.sampled_from(SOURCES))
    def subscribe(self, event_type: Enum | None, name: str, source: str | None) -> None:
        sub = self.bus.subscribe(event_type, self.callbacks[name], source=source)
        assert sub.active is True
        assert sub.callback is self.callbacks[name]
        assert sub.event_type is event_type
        assert sub.source == source
        key = (event_type, name, source)
        if key not in self.subs:
            self.subs.append(key)

    @rule(event_type=st.sampled_from(SUBSCRIBE_TYPES), name=st.sampled_from(NAMES))
    def unsubscribe(self, event_type: Enum | None, name: str) -> None:
        removed = self.bus.unsubscribe(event_type, self.callbacks[name])
        gone = [k for k in self.subs if k[0] is event_type and k[1] == name]
        assert removed == len(gone)
        self.subs = [k for k in self.subs if k not in gone]

    @rule(source=st.sampled_from(("x", "y", "z")))
    def unsubscribe_by_source(self, source: str) -> None:
        removed = self.bus.unsubscribe_by_source(source)
        gone = [k for k in self.subs if k[2] == source]
        assert removed == len(gone)
        self.subs = [k for k in self.subs if k not in gone]

    @rule(event_type=st.sampled_from(PUBLISH_TYPES), source=st.sampled_from((None, "x")))
    def publish_sync(self, event_type: Enum, source: str | None) -> None:
        self.calls.clear()
        event = Event(event_type, {"n": len(self.history)}, source)
        report = self.bus.publish_sync(event)
        if self.enabled:
            expected = [name for t, name, _ in self.subs if t is None or t is event_type]
            if self.history_size:
                self.history = (self.history + [event])[-self.history_size :]
        else:
            expected = []
        assert self.calls == expected
        assert [s.name.rsplit(".", 1)[-1] for s in report.succeeded] == ["callback"] * len(expected)
        assert [s.callback for s in report.succeeded] == [self.callbacks[name] for name in expected]
        assert report.ok is True

    @rule()
    def disable(self) -> None:
        self.bus.disable()
        self.enabled = False

    @rule()
    def enable(self) -> None:
        self.bus.enable()
        self.enabled = True

    @rule(n=st.sampled_from((0, 1, 2, 3, 5, 1000)))
    def set_history_size(self, n: int) -> None:
        self.bus.set_history_size(n)
        self.history_size = n
        self.history = self.history[-n:] if n else []

    @rule()
    def clear_history(self) -> None:
        self.bus.clear_history()
        self.history = []

    # -- invariants --------------------------------------------------------

    @invariant()
    def subscriber_counts_match(self) -> None:
        assert self.bus.get_subscriber_count() == len(self.subs)
        for event_type in PUBLISH_TYPES:
            expected = sum(1 for t, _, _ in self.subs if t is None or t is event_type)
            assert self.bus.get_subscriber_count(event_type) == expected

    @invariant()
    def history_matches(self) -> None:
        assert self.bus.history_size == self.history_size
        assert self.bus.get_history() == self.history
        assert len(self.bus.get_delivery_reports()) == len(self.history)

    @invariant()
    def enabled_matches(self) -> None:
        assert self.bus.is_enabled() is self.enabled


EventBusModel.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None, database=None)
TestEventBusModel = EventBusModel.TestCase
