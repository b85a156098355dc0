"""Receivers' return values: kept in ``report.results`` for the events of a
typed event class declared ``collect=True`` (a query), on every publish
path; never for any other event, so no other publish pays for them or
keeps what its receivers return."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from typing import Any

import pytest
from asgiref.sync import markcoroutinefunction

from blinker_events import DeliveryReport, Event, EventBus, EventTimeoutError, TypedEvent
from tests.conftest import WAIT, BusFactory, Component, Demo, async_wait_until


class GetPrice(TypedEvent, collect=True):
    sku: str


class GetDiscountedPrice(GetPrice):
    percent: int


class PriceChanged(TypedEvent):
    sku: str


def answers(report: DeliveryReport) -> dict[str, Any]:
    """``report.results`` by receiver name (the order they ended in is the paths' own)."""
    assert report.results is not None
    return {sub.name.rsplit(".", 1)[-1]: value for sub, value in report.results}


def subscribe_answerers(bus: EventBus) -> None:
    def quote(event: GetPrice) -> float:
        return 9.5

    async def quote_async(event: GetPrice) -> float:
        await asyncio.sleep(0)
        return 8.0

    def nothing(event: GetPrice) -> None:
        return None

    def broken(event: GetPrice) -> float:
        raise LookupError(event.sku)

    for receiver in (quote, quote_async, nothing, broken):
        bus.subscribe(GetPrice, receiver)


def check_answers(report: DeliveryReport) -> None:
    got = answers(report)
    assert set(got) == {"quote", "quote_async", "nothing", "broken"}
    assert (got["quote"], got["quote_async"], got["nothing"]) == (9.5, 8.0, None)
    assert isinstance(got["broken"], LookupError)
    assert got["broken"].args == ("a",)
    assert len(report.succeeded) == 3
    assert [exc for _, exc in report.failed] == [got["broken"]]


def test_publish_sync_of_a_collect_class_keeps_each_receivers_return_value(bus: EventBus) -> None:
    subscribe_answerers(bus)
    check_answers(bus.publish_sync(GetPrice(sku="a")))


@pytest.mark.asyncio
async def test_await_publish_of_a_collect_class_keeps_each_receivers_return_value(bus: EventBus) -> None:
    subscribe_answerers(bus)
    check_answers(await bus.publish(GetPrice(sku="a")))


@pytest.mark.asyncio
async def test_a_single_async_receiver_of_await_publish_has_its_value_kept(bus: EventBus) -> None:
    async def quote(event: GetPrice) -> int:
        return 3

    async def suspends(event: GetPrice) -> int:
        await asyncio.sleep(0.01)
        return 4

    bus.subscribe(GetPrice, quote)
    assert answers(await bus.publish(GetPrice(sku="a"))) == {"quote": 3}
    assert bus.unsubscribe(GetPrice, quote) == 1
    bus.subscribe(GetPrice, suspends)
    assert answers(await bus.publish(GetPrice(sku="a"))) == {"suspends": 4}


@pytest.mark.asyncio
async def test_await_publish_keeps_results_in_subscription_order_when_a_receiver_fails_to_start(
    bus: EventBus,
) -> None:
    async def ends_last(event: GetPrice) -> str:
        await asyncio.sleep(0.05)
        return "ends last"

    @markcoroutinefunction
    def fails_to_start(event: GetPrice) -> Any:  # called for its coroutine, it raises instead
        raise RuntimeError("no coroutine")

    async def ends_first(event: GetPrice) -> str:
        return "ends first"

    subs = [bus.subscribe(GetPrice, receiver) for receiver in (ends_last, fails_to_start, ends_first)]
    report = await bus.publish(GetPrice(sku="a"))
    assert report.results is not None
    assert [sub for sub, _ in report.results] == subs
    assert [str(value) for _, value in report.results] == ["ends last", "no coroutine", "ends first"]


def test_publish_nowait_of_a_collect_class_keeps_each_receivers_return_value(bus: EventBus) -> None:
    subscribe_answerers(bus)
    check_answers(bus.publish_nowait(GetPrice(sku="a")).result(WAIT))


def test_publish_sync_on_a_running_loop_adds_the_scheduled_receivers_values_when_they_end(bus: EventBus) -> None:
    subscribe_answerers(bus)

    async def main() -> DeliveryReport:
        report = bus.publish_sync(GetPrice(sku="a"))
        assert set(answers(report)) == {"quote", "nothing", "broken"}  # the async one is still scheduled
        assert await async_wait_until(lambda: report.finished, WAIT)
        return report

    check_answers(asyncio.run(main()))


def test_a_timed_out_receiver_has_the_timeout_error_as_its_value(new_bus: BusFactory) -> None:
    bus = new_bus(timeout=0.2)

    async def slow(event: GetPrice) -> int:
        await asyncio.sleep(10)
        return 1

    bus.subscribe(GetPrice, slow)
    report = asyncio.run(bus.publish(GetPrice(sku="a")))
    assert len(report.timed_out) == 1
    assert isinstance(answers(report)["slow"], EventTimeoutError)


def test_subclasses_of_a_collect_class_collect_and_other_events_do_not(bus: EventBus) -> None:
    bus.subscribe(None, lambda event: "seen")
    assert answers(bus.publish_sync(GetDiscountedPrice(sku="a", percent=10))) == {"<lambda>": "seen"}
    assert bus.publish_sync(PriceChanged(sku="a")).results is None
    assert bus.publish_sync(Event(Demo.PING)).results is None
    assert bus.publish_nowait(Event(Demo.PING)).result(WAIT).results is None
    assert asyncio.run(bus.publish(PriceChanged(sku="a"))).results is None


def test_a_class_can_turn_collecting_off_for_its_subclasses() -> None:
    class Quiet(GetPrice, collect=False):
        pass

    assert (GetPrice.collect, GetDiscountedPrice.collect, Quiet.collect, PriceChanged.collect) == (
        True,
        True,
        False,
        False,
    )
    with pytest.raises(TypeError, match=r"^collect must be a bool, not int$"):
        type("Bad", (TypedEvent,), {}, collect=1)


def test_the_history_keeps_a_value_only_while_it_keeps_the_report(new_bus: BusFactory) -> None:
    bus = new_bus(history_size=1)
    bus.subscribe(GetPrice, lambda event: Component())
    report = bus.publish_sync(GetPrice(sku="a"))
    answer = weakref.ref(answers(report)["<lambda>"])
    del report
    gc.collect()
    assert answer() is not None  # the history's report holds it
    bus.publish_sync(GetPrice(sku="b"))  # pushes that report out of the history
    gc.collect()
    assert answer() is None


def test_values_collected_from_many_threads_at_once_stay_with_their_publish(bus: EventBus) -> None:
    bus.subscribe(GetPrice, lambda event: event.sku)
    wrong: list[tuple[str, Any]] = []

    def ask(name: str) -> None:
        for n in range(200):
            sku = f"{name}-{n}"
            report = (
                bus.publish_sync(GetPrice(sku=sku)) if n % 2 else bus.publish_nowait(GetPrice(sku=sku)).result(WAIT)
            )
            if answers(report) != {"<lambda>": sku}:
                wrong.append((sku, report.results))

    threads = [threading.Thread(target=ask, args=(str(i),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert wrong == []
