"""blinker_events.testing without pytest's plugin: the capture on any bus
(all three publish paths, threads, hostile data) and the isolation of a
bus's state."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from blinker_events import Event, EventBus, TypedEvent, lowlevel
from blinker_events.testing import Capture, Isolation, capture, isolated

from .conftest import WAIT, Demo


@pytest.mark.asyncio
async def test_capture_records_all_three_paths_in_the_order_they_ended(bus: EventBus) -> None:
    with capture(bus) as published:
        first = Event(Demo.PING, {"n": 1})
        bus.publish_sync(first)
        second = Event(Demo.PING, {"n": 2})
        await bus.publish(second)
        third = Event(Demo.PONG, {"n": 3})
        bus.publish_nowait(third)
        assert published.wait_until_published(Demo.PONG, n=3, timeout=WAIT) is third
    assert published.events == [first, second, third]
    assert [r.event for r in published.reports] == [first, second, third]
    assert published.published(Demo.PING) == [first, second]
    assert published.published(None, n=3) == [third]


def test_capture_records_only_while_active(bus: EventBus) -> None:
    bus.publish_sync(Event(Demo.PING, {"when": "before"}))
    with capture(bus) as published:
        bus.publish_sync(Event(Demo.PING, {"when": "during"}))
    bus.publish_sync(Event(Demo.PING, {"when": "after"}))
    assert [e.data["when"] for e in published.events] == ["during"]
    assert lowlevel.observers(bus) == ()
    assert bus.get_subscriber_count() == 0


def test_capture_counts_no_subscriber_and_sees_events_nobody_receives(bus: EventBus) -> None:
    with capture(bus) as published:
        assert bus.get_subscriptions() == []
        bus.publish_sync(Event("nobody.listens"))
    published.assert_published("nobody.listens")


def test_wait_until_published_times_out_with_the_listing(bus: EventBus) -> None:
    with capture(bus) as published:
        bus.publish_sync(Event(Demo.PONG))
        started = time.monotonic()
        with pytest.raises(AssertionError, match=r"after 0\.2s: no Demo\.PING event .*published instead \(1\)"):
            published.wait_until_published(Demo.PING, timeout=0.2)
    assert time.monotonic() - started < WAIT


def test_failures_lists_raised_and_timed_out_receivers(bus: EventBus) -> None:
    def broken(event: Event) -> None:
        raise KeyError("k")

    def slow(event: Event) -> None:
        time.sleep(0.1)

    bus.subscribe(Demo.PING, broken)
    bus.subscribe(Demo.PING, slow, timeout=0.02)
    with capture(bus) as published:
        report = bus.publish_sync(Event(Demo.PING))
    failures = published.failures()
    assert [(r, s.name.rsplit(".", 1)[-1], type(e).__name__) for r, s, e in failures] == [
        (report, "broken", "KeyError"),
        (report, "slow", "EventTimeoutError"),
    ]
    assert [(r, s) for r, s, _ in published.failures(silent=True)] == [(r, s) for r, s, _ in failures]


def test_silent_failures_leave_out_what_the_bus_raised(bus: EventBus) -> None:
    def broken(event: Event) -> None:
        raise KeyError("k")

    bus.subscribe(Demo.PING, broken)
    with capture(bus) as published:
        bus.set_propagate_exceptions(True)
        with pytest.raises(KeyError):
            bus.publish_sync(Event(Demo.PING))
        bus.set_propagate_exceptions(False)
        bus.publish_sync(Event(Demo.PING))
    assert len(published.failures()) == 2
    assert len(published.failures(silent=True)) == 1


def test_many_threads_publishing_are_all_captured(bus: EventBus) -> None:
    with capture(bus) as published:
        threads = [
            threading.Thread(target=lambda t=t: [bus.publish_sync(Event(Demo.PING, {"t": t})) for _ in range(100)])
            for t in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(published) == 400
    assert all(len(published.published(Demo.PING, t=t)) == 100 for t in range(4))


def test_a_data_value_whose_eq_raises_does_not_match(bus: EventBus) -> None:
    class NoEq:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no eq")

        __hash__ = object.__hash__

    with capture(bus) as published:
        bus.publish_sync(Event(Demo.PING, {"v": NoEq()}))
    published.assert_not_published(Demo.PING, v=1)
    with pytest.raises(AssertionError, match="published instead"):
        published.assert_published(Demo.PING, v=1)


def test_capture_checks_its_arguments(bus: EventBus) -> None:
    with pytest.raises(TypeError, match="bus must be an EventBus, not str"):
        capture("bus")  # type: ignore[arg-type]
    published = capture(bus)
    with published, pytest.raises(RuntimeError, match="already recording"):
        published.start()
    with pytest.raises(TypeError, match="event_type must be"):
        published.assert_published(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="timeout must be"):
        published.wait_until_published(Demo.PING, timeout="1")  # type: ignore[arg-type]


def test_the_testing_package_does_not_import_pytest() -> None:
    code = "import sys, blinker_events.testing; assert 'pytest' not in sys.modules, 'pytest imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- isolation -----------------------------------------------------------------


class _Outlet:
    takes_over = False

    def prepare(self, event: Event) -> object | None:
        return None

    def send(self, prepared: object) -> None: ...

    def close(self, timeout: float | None) -> None: ...


def test_isolation_restores_subscriptions_settings_outlets_and_history(bus: EventBus) -> None:
    received: list[Any] = []
    sender = object()
    kept = bus.subscribe(Demo.PING, received.append, source="app", timeout=1.5, reentrant=True)
    other = bus.subscribe(Demo.PONG, received.append, sender=sender)
    outlet = _Outlet()
    bus.add_outlet(outlet)
    before = bus.publish_sync(Event(Demo.OTHER))
    with isolated(bus) as isolation:
        assert bus.get_history() == []
        bus.subscribe(Demo.PING, lambda event: None)
        kept.unsubscribe()
        other.unsubscribe()
        bus.configure(timeout=0.5, history_size=3)
        bus.remove_outlet(outlet)
        bus.add_outlet(_Outlet())
        bus.set_dispatch_context(lambda: open(__file__))  # noqa: SIM115
        bus.disable()
        stream = bus.stream(Demo.PING)
    assert stream is not None
    assert bus.is_enabled()
    assert bus.settings.timeout is None
    assert bus.history_size == 1000
    assert bus.dispatch_context is None
    assert lowlevel.outlets(bus) == (outlet,)
    assert lowlevel.observers(bus) == ()
    assert bus.get_delivery_reports() == [before]
    subs = bus.get_subscriptions()
    assert [(s.event_type, s.callback, s.source, s.timeout, s.reentrant) for s in subs] == [
        (Demo.PING, received.append, "app", 1.5, True),
        (Demo.PONG, received.append, None, None, False),
    ]
    assert subs[1].sender is sender
    assert isolation.restored[:6] == [
        "subscriptions added: 1",
        "subscriptions removed: 2",
        "observers (waiters, streams, captures) left: 1",
        "settings",
        "enabled",
        "dispatch context",
    ]
    assert isolation.restored[6].startswith("outlet added: <tests.test_testing_helpers._Outlet object at 0x")
    assert isolation.restored[7] == f"outlet removed: {lowlevel.describe(outlet)}"
    assert len(isolation.restored) == 8


def test_isolation_drains_what_the_test_queued(bus: EventBus) -> None:
    done: list[int] = []

    def slow(event: Event) -> None:
        time.sleep(0.05)
        done.append(1)

    with isolated(bus) as isolation:
        bus.subscribe(Demo.PING, slow)
        bus.publish_nowait(Event(Demo.PING))
    assert done == [1]
    assert isolation.dropped == 0
    assert bus.get_subscriptions() == []


def test_an_untouched_bus_has_nothing_restored(bus: EventBus) -> None:
    bus.subscribe(Demo.PING, lambda event: None)
    with isolated(bus) as isolation:
        bus.publish_sync(Event(Demo.PING))
    assert isolation.restored == []


def test_isolation_checks_its_arguments_and_its_use(bus: EventBus) -> None:
    with pytest.raises(TypeError, match="bus must be an EventBus"):
        Isolation(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="drain_timeout"):
        isolated(bus, drain_timeout=-1)
    isolation = isolated(bus)
    with pytest.raises(RuntimeError, match="save"):
        isolation.restore()
    with isolation, pytest.raises(RuntimeError, match="already holds"):
        isolation.save()


def test_capture_is_a_capture() -> None:
    assert isinstance(capture(), Capture)
    assert Capture.__module__ == "blinker_events.testing"


def test_data_keys_may_be_named_like_the_arguments(bus: EventBus) -> None:
    with capture(bus) as published:
        bus.publish_sync(Event(Demo.PING, {"event_type": "x", "timeout": 1}))
    assert published.assert_published(Demo.PING, event_type="x").data["timeout"] == 1
    assert published.wait_until_published(Demo.PING, event_type="x", timeout=WAIT).data["timeout"] == 1


def test_a_failure_message_lists_the_newest_twenty(bus: EventBus) -> None:
    with capture(bus) as published:
        for n in range(25):
            bus.publish_sync(Event(Demo.PONG, {"n": n}))
    with pytest.raises(AssertionError) as caught:
        published.assert_published(Demo.PING)
    lines = str(caught.value).splitlines()
    assert lines[0].endswith("published instead (25):")
    assert lines[1] == "  ... 5 earlier"
    assert [line.split("{'n': ")[1].split("}")[0] for line in lines[2:]] == [str(n) for n in range(5, 25)]


def test_isolation_puts_back_failure_counts_and_disabled_states(bus: EventBus) -> None:
    def flaky(event: Event) -> None:
        if event.data.get("fail"):
            raise RuntimeError("down")

    counting = bus.subscribe(Demo.PING, flaky)
    off = bus.subscribe(Demo.PONG, flaky)
    off.disabled = True  # as the bus leaves an auto-disabled one
    with isolated(bus) as isolation:
        bus.publish_sync(Event(Demo.PING, {"fail": True}))
        assert counting.failures == 1
        off.enable()
    assert counting.failures == 0
    assert not counting.disabled
    assert off.disabled
    assert isolation.restored == ["subscriptions reset: 2"]


def test_a_subscription_whose_sender_was_collected_is_not_made_again(bus: EventBus) -> None:
    class Sender:
        pass

    sender = Sender()
    bus.subscribe(Demo.PING, print, sender=sender)
    with isolated(bus) as isolation:
        del sender
        gc.collect()
    assert bus.get_subscriptions() == []
    assert isolation.restored == []


class _Placed(TypedEvent):
    order_id: int


class _PlacedAbroad(_Placed):
    country: str


def test_capture_finds_a_typed_event_class_with_its_subclasses_events_as_receivers_get_them(bus: EventBus) -> None:
    with capture(bus) as seen:
        bus.publish_sync(_PlacedAbroad(order_id=42, country="NL"))
    event = seen.assert_published(_Placed, order_id=42)
    assert type(event) is _PlacedAbroad
    assert seen.wait_until_published(_Placed, country="NL", timeout=WAIT) is event
    seen.assert_not_published(_Placed, order_id=41)


def test_an_isolation_ending_closes_the_streams_and_waiters_the_test_left_open(bus: EventBus) -> None:
    with isolated(bus) as iso:
        stream = bus.stream("x", timeout=WAIT)
        waiter = bus.expect("never", timeout=WAIT)
        waiter.__enter__()
        bus.publish_sync(Event("x"))
    assert iso.restored == ["observers (waiters, streams, captures) left: 2"]
    assert stream.closed
    assert [event.event_type for event in stream] == ["x"]  # what was buffered, then the end
    with pytest.raises(RuntimeError, match="its isolation ended"):
        waiter.wait()
