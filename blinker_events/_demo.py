"""``python -m blinker_events demo``: the bus's guarantees, one at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from enum import auto

from . import Event, EventBus, EventType, event_type_name


class Shop(EventType):
    ORDER_PLACED = auto()
    STOCK_CHANGED = auto()
    PING = auto()


def _title(text: str) -> None:
    print(f"\n== {text}")


def run_demo() -> None:
    # The bus logs every failure with its traceback; the demo prints outcomes instead.
    logging.basicConfig(level=logging.CRITICAL)
    bus = EventBus(timeout=0.5, failure_threshold=2, history_size=100)

    _title("sync and async receivers, one publish_sync")

    def bill(event: Event) -> None:
        print(f"   sync  receiver billed order {event.data['order']}")

    async def email(event: Event) -> None:
        await asyncio.sleep(0.01)
        print(f"   async receiver emailed about order {event.data['order']}")

    bus.subscribe(Shop.ORDER_PLACED, bill)
    bus.subscribe(Shop.ORDER_PLACED, email)
    report = bus.publish_sync(Event(Shop.ORDER_PLACED, {"order": 1}, "demo"))
    print(f"   {len(report.succeeded)} receivers succeeded")

    _title("the same from async code: await publish")
    report = asyncio.run(bus.publish(Event(Shop.ORDER_PLACED, {"order": 2}, "demo")))
    print(f"   {len(report.succeeded)} receivers succeeded")

    _title("a receiver that hangs is timed out (timeout 0.5 s)")

    async def slow_warehouse(event: Event) -> None:
        await asyncio.sleep(10)

    slow = bus.subscribe(Shop.STOCK_CHANGED, slow_warehouse)
    started = time.perf_counter()
    report = bus.publish_sync(Event(Shop.STOCK_CHANGED, {"sku": "A-1"}))
    elapsed = time.perf_counter() - started
    print(f"   returned after {elapsed:.2f} s; timed out: {[s.name.rpartition('.')[2] for s in report.timed_out]}")
    slow.unsubscribe()

    _title("an event that re-triggers itself is stopped by the cycle guard")

    def echo(event: Event) -> None:
        print(f"   echo handles {event.event_id} (parent {event.parent_id})")
        bus.publish_sync(Event(Shop.PING, {}, "echo"))

    bus.subscribe(Shop.PING, echo)
    report = bus.publish_sync(Event(Shop.PING))
    inner = bus.get_delivery_reports(Shop.PING, limit=2)[0]
    print(f"   echo ran once; the re-entry was skipped: {[reason for _, reason, _ in inner.skipped]}")

    _title("a receiver that keeps failing is auto-disabled (threshold 2)")

    def flaky(event: Event) -> None:
        raise RuntimeError("inventory service down")

    def on_disabled(event: Event) -> None:
        receiver = event.data["receiver"].rpartition(".")[2]
        print(f"   SUBSCRIBER_DISABLED: {receiver} after {event.data['failures']} failures")

    bus.subscribe(Shop.STOCK_CHANGED, flaky)
    bus.subscribe(EventType.SUBSCRIBER_DISABLED, on_disabled)
    for n in range(3):
        report = bus.publish_sync(Event(Shop.STOCK_CHANGED, {"sku": f"B-{n}"}))
        print(f"   publish {n + 1}: failed={len(report.failed)} skipped={[r for _, r, _ in report.skipped]}")

    _title("fire and forget: publish_nowait returns a future at once")
    future = bus.publish_nowait(Event(Shop.ORDER_PLACED, {"order": 3}, "demo"))
    print(f"   future resolved: {len(future.result(timeout=5).succeeded)} receivers succeeded")

    _title("history, oldest first")
    for report in bus.get_delivery_reports():
        outcome = (
            f"ok={len(report.succeeded)} failed={len(report.failed)} "
            f"timed_out={len(report.timed_out)} skipped={len(report.skipped)}"
        )
        event = report.event
        print(f"   {event.timestamp:%H:%M:%S.%f} {event_type_name(event.event_type):35} {event.event_id:16}  {outcome}")
    bus.shutdown(timeout=5)
