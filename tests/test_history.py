"""The history: a bounded ring buffer of delivery reports, oldest first,
filterable, resizable, linking each event to its outcome."""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from typing import Any

import pytest

from blinker_events import Event, EventBus

from .conftest import Demo


def _publish_many(bus: EventBus, n: int, event_type: Any = Demo.PING) -> list[Event]:
    events = [Event(event_type, {"i": i}) for i in range(n)]
    for event in events:
        bus.publish_sync(event)
    return events


def test_default_size_is_1000_and_keeps_the_newest(bus: EventBus) -> None:
    assert bus.history_size == 1000
    events = _publish_many(bus, 1005)
    assert bus.get_history() == events[5:]


@pytest.mark.parametrize("size", [1, 3, 7])
def test_bounded_ring_buffer_keeps_exactly_the_newest(size: int) -> None:
    bus = EventBus(history_size=size)
    try:
        events = _publish_many(bus, size + 5)
        assert bus.get_history() == events[-size:]
        assert [r.event for r in bus.get_delivery_reports()] == events[-size:]
    finally:
        assert bus.shutdown(timeout=10) == 0


def test_history_records_publishes_without_subscribers(bus: EventBus) -> None:
    events = _publish_many(bus, 3)
    assert bus.get_history() == events
    assert all(r.succeeded == [] for r in bus.get_delivery_reports())


def test_get_history_filters_by_type_source_and_limit(bus: EventBus) -> None:
    e1 = Event(Demo.PING, None, "a")
    e2 = Event(Demo.PONG, None, "a")
    e3 = Event(Demo.PING, None, "b")
    e4 = Event("text.type", None, "a")
    e5 = Event(Demo.PING, None, "a")
    for event in (e1, e2, e3, e4, e5):
        bus.publish_sync(event)
    assert bus.get_history() == [e1, e2, e3, e4, e5]
    assert bus.get_history(Demo.PING) == [e1, e3, e5]
    assert bus.get_history(event_type=Demo.PONG) == [e2]
    assert bus.get_history("text.type") == [e4]
    assert bus.get_history(Demo.OTHER) == []
    assert bus.get_history(source="a") == [e1, e2, e4, e5]
    assert bus.get_history(source="b") == [e3]
    assert bus.get_history(source="nobody") == []
    assert bus.get_history(Demo.PING, source="a") == [e1, e5]
    assert bus.get_history(limit=2) == [e4, e5]
    assert bus.get_history(Demo.PING, limit=2) == [e3, e5]
    assert bus.get_history(Demo.PING, 1, source="a") == [e5]
    assert bus.get_history(limit=1) == [e5]


def test_limit_zero_gives_empty_list(bus: EventBus) -> None:
    _publish_many(bus, 4)
    assert bus.get_history(limit=0) == []
    assert bus.get_history(Demo.PING, limit=0) == []
    assert bus.get_delivery_reports(limit=0) == []


def test_limit_larger_than_history_gives_everything(bus: EventBus) -> None:
    events = _publish_many(bus, 3)
    assert bus.get_history(limit=10) == events
    assert bus.get_history(limit=3) == events


@pytest.mark.parametrize("limit", [-1, -100])
def test_negative_limit_raises_value_error(bus: EventBus, limit: int) -> None:
    events = _publish_many(bus, 2)
    with pytest.raises(ValueError, match="limit"):
        bus.get_history(limit=limit)
    with pytest.raises(ValueError, match="limit"):
        bus.get_delivery_reports(limit=limit)
    assert bus.get_history() == events


def test_size_zero_records_nothing() -> None:
    bus = EventBus(history_size=0)
    try:
        seen: list[Event] = []
        bus.subscribe(Demo.PING, seen.append)
        events = _publish_many(bus, 3)
        assert seen == events  # delivery is unaffected
        assert bus.history_size == 0
        assert bus.get_history() == []
        assert bus.get_delivery_reports() == []
    finally:
        assert bus.shutdown(timeout=10) == 0


def test_set_history_size_zero_turns_history_off_and_back_on(bus: EventBus) -> None:
    _publish_many(bus, 3)
    bus.set_history_size(0)
    assert bus.get_history() == []
    _publish_many(bus, 2)
    assert bus.get_history() == []
    bus.set_history_size(2)
    later = _publish_many(bus, 3)
    assert bus.get_history() == later[-2:]


def test_shrinking_keeps_the_newest(bus: EventBus) -> None:
    events = _publish_many(bus, 10)
    bus.set_history_size(4)
    assert bus.history_size == 4
    assert bus.get_history() == events[-4:]
    more = _publish_many(bus, 1)
    assert bus.get_history() == events[-3:] + more


def test_growing_keeps_everything(bus: EventBus) -> None:
    bus.set_history_size(3)
    events = _publish_many(bus, 3)
    bus.set_history_size(6)
    assert bus.get_history() == events
    more = _publish_many(bus, 4)
    assert bus.get_history() == (events + more)[-6:]


def test_clear_history(bus: EventBus) -> None:
    _publish_many(bus, 5)
    bus.clear_history()
    assert bus.get_history() == []
    assert bus.get_delivery_reports() == []
    assert bus.history_size == 1000
    later = _publish_many(bus, 2)
    assert bus.get_history() == later


def test_delivery_reports_link_events_to_outcomes(bus: EventBus) -> None:
    boom = RuntimeError("boom")

    def good(event: Event) -> None:
        pass

    def bad(event: Event) -> None:
        if event.data.get("fail"):
            raise boom

    good_sub = bus.subscribe(Demo.PING, good)
    bad_sub = bus.subscribe(Demo.PING, bad)
    ok_event = Event(Demo.PING, {"fail": False})
    bad_event = Event(Demo.PING, {"fail": True})
    returned = [bus.publish_sync(ok_event), bus.publish_sync(bad_event)]
    reports = bus.get_delivery_reports()
    assert reports == returned  # the very reports the publishes returned
    assert [r.event for r in reports] == bus.get_history() == [ok_event, bad_event]
    assert reports[0].succeeded == [good_sub, bad_sub]
    assert list(reports[0].failed) == []
    assert reports[1].succeeded == [good_sub]
    assert list(reports[1].failed) == [(bad_sub, boom)]
    assert bus.get_delivery_reports(Demo.PING, limit=1) == [returned[1]]


def test_same_event_object_published_twice_is_recorded_and_delivered_twice(bus: EventBus) -> None:
    seen: list[Event] = []
    bus.subscribe(Demo.PING, seen.append)
    event = Event(Demo.PING)
    first = bus.publish_sync(event)
    second = bus.publish_sync(event)
    assert seen == [event, event]
    assert bus.get_history() == [event, event]
    assert bus.get_delivery_reports() == [first, second]
    assert first is not second


def test_same_event_object_published_from_threads_is_recorded_and_delivered_each_time(bus: EventBus) -> None:
    seen: list[Event] = []
    lock = threading.Lock()

    def receiver(event: Event) -> None:
        with lock:
            seen.append(event)

    bus.subscribe(Demo.PING, receiver)
    event = Event(Demo.PING)
    start = threading.Barrier(4)

    def publisher() -> None:
        start.wait()
        for _ in range(50):
            bus.publish_sync(event)

    threads = [threading.Thread(target=publisher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 200
    assert bus.get_history() == [event] * 200


@pytest.mark.asyncio
async def test_await_publish_and_publish_nowait_are_recorded(bus: EventBus) -> None:
    seen: list[Event] = []
    bus.subscribe(Demo.PING, seen.append)
    e1, e2 = Event(Demo.PING, {"n": 1}), Event(Demo.PING, {"n": 2})
    r1 = await bus.publish(e1)
    r2 = bus.publish_nowait(e2).result(timeout=10)
    assert seen == [e1, e2]
    assert bus.get_delivery_reports() == [r1, r2]


def test_nested_publish_is_recorded_before_its_parent(bus: EventBus) -> None:
    inner: list[Event] = []

    def on_ping(event: Event) -> None:
        child = Event(Demo.PONG)
        inner.append(child)
        bus.publish_sync(child)

    bus.subscribe(Demo.PING, on_ping)
    outer = Event(Demo.PING)
    bus.publish_sync(outer)
    assert bus.get_history() == [inner[0], outer]


@pytest.mark.asyncio
async def test_disabled_bus_publishes_are_not_recorded(bus: EventBus) -> None:
    seen: list[Event] = []
    bus.subscribe(Demo.PING, seen.append)
    before = Event(Demo.PING)
    bus.publish_sync(before)
    bus.disable()
    try:
        sync_report = bus.publish_sync(Event(Demo.PING))
        async_report = await bus.publish(Event(Demo.PING))
        nowait_report = bus.publish_nowait(Event(Demo.PING)).result(timeout=10)
        for report in (sync_report, async_report, nowait_report):
            assert report.succeeded == []
            assert report.ok is True
        assert seen == [before]
        assert bus.get_history() == [before]
    finally:
        bus.enable()
    after = Event(Demo.PING)
    bus.publish_sync(after)
    assert bus.get_history() == [before, after]


def test_history_from_many_threads_has_exact_count(bus: EventBus) -> None:
    threads_n, per_thread = 8, 250
    bus.set_history_size(threads_n * per_thread)
    start = threading.Barrier(threads_n)
    published: list[list[Event]] = [[] for _ in range(threads_n)]
    bus.subscribe(None, lambda e: None)

    def publisher(out: list[Event], n: int) -> None:
        start.wait()
        for i in range(per_thread):
            event = Event(Demo.PING if i % 2 else Demo.PONG, {"thread": n, "i": i}, f"t{n}")
            out.append(event)
            bus.publish_sync(event)

    threads = [threading.Thread(target=publisher, args=(out, n)) for n, out in enumerate(published)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history = bus.get_history()
    assert len(history) == threads_n * per_thread
    assert {e.event_id for e in history} == {e.event_id for out in published for e in out}
    for n, out in enumerate(published):
        # Each thread's events appear in the order that thread published them.
        assert bus.get_history(source=f"t{n}") == out
    assert len(bus.get_history(Demo.PING)) == threads_n * per_thread // 2


def test_history_from_many_threads_with_overflow_keeps_newest_count(bus: EventBus) -> None:
    bus.set_history_size(100)
    start = threading.Barrier(4)

    def publisher() -> None:
        start.wait()
        for _ in range(200):
            bus.publish_sync(Event(Demo.PING))

    threads = [threading.Thread(target=publisher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(bus.get_history()) == 100


def test_growing_history_while_threads_publish_loses_nothing() -> None:
    """set_history_size that only grows must never drop a record made concurrently."""
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often so the race shows up every run
    try:
        for _ in range(3):
            bus = EventBus(history_size=100_000)
            try:
                stop = threading.Event()
                start = threading.Barrier(5)

                def resizer(bus: EventBus = bus, stop: threading.Event = stop) -> None:
                    k = 0
                    while not stop.is_set():
                        k += 1
                        bus.set_history_size(100_000 + k % 7)

                def publisher(bus: EventBus = bus, start: threading.Barrier = start) -> None:
                    start.wait()
                    for _ in range(2000):
                        bus.publish_sync(Event(Demo.PING))

                publishers = [threading.Thread(target=publisher) for _ in range(4)]
                resizing = threading.Thread(target=resizer)
                for t in publishers:
                    t.start()
                resizing.start()
                start.wait()
                for t in publishers:
                    t.join()
                stop.set()
                resizing.join()
                assert len(bus.get_history()) == 8000
            finally:
                assert bus.shutdown(timeout=10) == 0
    finally:
        sys.setswitchinterval(old_interval)


class _Incomparable:
    """Like a detached ORM instance: comparing it raises (``error``: what;
    SystemExit too, which must not end another caller's lookup either)."""

    def __init__(self, error: type[BaseException]) -> None:
        self.error = error

    def __eq__(self, other: object) -> bool:
        raise self.error("instance is detached")

    __hash__ = object.__hash__


@pytest.mark.parametrize("error", [RuntimeError, SystemExit])
def test_get_history_by_source_passes_over_sources_that_cannot_be_compared(
    bus: EventBus, error: type[BaseException]
) -> None:
    incomparable = _Incomparable(error)
    shop = Event(Demo.PING, source="shop")
    bus.publish_sync(shop)
    detached = Event(Demo.PING, source=incomparable)
    bus.publish_sync(detached)
    assert bus.get_history(source="shop") == [shop]
    assert [r.event for r in bus.get_delivery_reports(source="shop")] == [shop]
    # The caller's own source may be one too: it is found by identity.
    assert bus.get_history(source=incomparable) == [detached]


@pytest.mark.parametrize("path", ["publish_sync", "publish_nowait"])
def test_failures_kept_in_history_do_not_pin_the_receivers_locals(bus: EventBus, path: str) -> None:
    """Used to: each failure in history kept its traceback and so every local
    of the failing receiver alive (a receiver holding a 5 MB buffer: 40
    failing publishes retained ~200 MB)."""
    bus.set_failure_threshold(10**6)

    class Marker:
        pass

    refs: list[weakref.ref[Marker]] = []

    def bad(e: Event) -> None:
        buf = bytearray(5_000_000)
        marker = Marker()
        refs.append(weakref.ref(marker))
        raise ValueError(f"boom {len(buf)}")

    sub = bus.subscribe(Demo.PING, bad)
    for _ in range(20):
        if path == "publish_sync":
            bus.publish_sync(Event(Demo.PING))
        else:
            bus.publish_nowait(Event(Demo.PING)).result(timeout=2)
    gc.collect()

    reports = bus.get_delivery_reports()
    assert len(reports) == 20
    assert all([(s, type(e)) for s, e in r.failed] == [(sub, ValueError)] for r in reports)
    assert sub.last_error is not None
    assert sub.last_error.startswith("ValueError(")
    assert len(refs) == 20
    assert [r() for r in refs] == [None] * 20


# failure mode 21: get_history(limit=0)
def test_get_history_limit_zero_returns_nothing(bus: EventBus) -> None:
    """`get_history(limit=0)` returned the whole history."""
    events = [Event(Demo.PING, {"n": n}) for n in range(3)]
    for event in events:
        bus.publish_sync(event)
    assert bus.get_history() == events
    assert bus.get_history(limit=0) == []
    assert bus.get_history(Demo.PING, limit=0) == []
    assert bus.get_delivery_reports(limit=0) == []
    assert bus.get_history(limit=2) == events[1:]
    assert bus.get_history(limit=10) == events
