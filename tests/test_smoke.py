from __future__ import annotations

from blinker_events import Event, EventBus

from .conftest import Demo


def test_publish_sync_reaches_a_subscriber(bus: EventBus) -> None:
    seen: list[Event] = []
    bus.subscribe(Demo.PING, seen.append)
    event = Event(Demo.PING, {"n": 1}, "test")
    report = bus.publish_sync(event)
    assert seen == [event]
    assert [s.callback for s in report.succeeded] == [seen.append]
