"""A small typed program using blinker_events as a user would; the smoke
test runs it and checks it with ``mypy --strict`` against the installed
wheel (so the package's py.typed and annotations are what a user gets)."""

from __future__ import annotations

from enum import auto

import blinker_events
from blinker_events import DeliveryReport, Event, EventBus, EventType, Subscription


class Shop(EventType):
    ORDER_PLACED = auto()


def bill(event: Event) -> None:
    print("billed order", event.data["order"])


def main() -> None:
    with EventBus(timeout=5.0) as bus:
        subscription: Subscription = bus.subscribe(Shop.ORDER_PLACED, bill)
        report: DeliveryReport = bus.publish_sync(Event(Shop.ORDER_PLACED, {"order": 42}, "checkout"))
        print("receivers that succeeded:", len(report.succeeded))
        assert not subscription.disabled
    version: str = blinker_events.__version__
    assert version


if __name__ == "__main__":
    main()
