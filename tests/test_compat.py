"""The drop-in blinker classes (issue 4, parts 1-3): unguarded they are blinker's; guarded they send through a bus
with every guard; and bridges relay signals the user does not own to a bus without the sender noticing."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import blinker
import pytest

import blinker_events as be
from blinker_events import CircularEventError, Event, EventBus, EventTimeoutError, SystemEventType, TypedEvent

from .conftest import Demo, all_collected

HOW = ["signal.guard(bus)", "bus.guard(signal)"]


class Shipped(TypedEvent):
    order: int


class Sender:
    """A sender that can be weakly referenced (blinker keys sender-specific receivers by a weakref)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<Sender {self.name}>"


def guard(sig: be.Signal, bus: EventBus, how: str) -> None:
    if how == "signal.guard(bus)":
        assert sig.guard(bus) is sig
    else:
        bus.guard(sig)
    assert sig.guarded_by is bus


def name_of(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


# -- the classes are blinker's --------------------------------------------------


def test_drop_in_classes_are_blinker_subclasses() -> None:
    sig = be.Signal()
    named = be.NamedSignal("named")
    ns = be.Namespace()
    assert isinstance(sig, blinker.Signal)
    assert isinstance(named, blinker.NamedSignal)
    assert isinstance(named, blinker.Signal)
    assert isinstance(named, be.Signal)
    assert isinstance(ns, blinker.Namespace)
    assert isinstance(be.default_namespace, be.Namespace)
    assert be.ANY is blinker.ANY
    assert sig.guarded_by is None


def test_namespace_signal_is_our_named_signal_and_the_same_on_repeat() -> None:
    ns = be.Namespace()
    first = ns.signal("saved", doc="Sent after a save.")
    assert type(first) is be.NamedSignal
    assert first.name == "saved"
    assert first.__doc__ == "Sent after a save."
    assert ns.signal("saved") is first
    assert ns.signal("deleted") is not first
    assert list(ns) == ["saved", "deleted"]


def test_module_level_signal_uses_the_default_namespace() -> None:
    name = "blinker_events.tests.test_compat.default-namespace"
    sig = be.signal(name)
    assert type(sig) is be.NamedSignal
    assert be.signal(name) is sig
    assert be.default_namespace.signal(name) is sig


# -- unguarded: byte-for-byte blinker ----------------------------------------------


def test_unguarded_send_returns_blinker_results_in_connection_order() -> None:
    sig = be.Signal()
    seen: list[tuple[Any, dict[str, Any]]] = []

    def first(sender: Any, **kwargs: Any) -> int:
        seen.append((sender, kwargs))
        return 1

    def second(sender: Any, **kwargs: Any) -> int:
        return 2

    sig.connect(first)
    sig.connect(second)
    assert sig.send("app", a=1) == [(first, 1), (second, 2)]
    assert seen == [("app", {"a": 1})]


def test_unguarded_send_propagates_a_receiver_exception_and_stops() -> None:
    sig = be.Signal()
    later: list[Any] = []

    def bad(sender: Any) -> None:
        raise ValueError("bad receiver")

    def after(sender: Any) -> None:
        later.append(sender)

    sig.connect(bad)
    sig.connect(after)
    with pytest.raises(ValueError, match=r"^bad receiver$"):
        sig.send("app")
    assert later == []


def test_unguarded_async_receiver_without_wrapper_raises_as_blinker_does() -> None:
    ours, theirs = be.Signal(), blinker.Signal()

    async def receiver(sender: Any) -> None:
        pass

    ours.connect(receiver)
    theirs.connect(receiver)
    with pytest.raises(RuntimeError) as from_ours:
        ours.send("app")
    with pytest.raises(RuntimeError) as from_theirs:
        theirs.send("app")
    assert type(from_ours.value) is type(from_theirs.value) is RuntimeError
    assert str(from_ours.value) == str(from_theirs.value) == "Cannot send to a coroutine function."


@pytest.mark.asyncio
async def test_unguarded_send_async_with_sync_receiver_without_wrapper_raises_as_blinker_does() -> None:
    ours, theirs = be.Signal(), blinker.Signal()

    def receiver(sender: Any) -> None:
        pass

    ours.connect(receiver)
    theirs.connect(receiver)
    with pytest.raises(RuntimeError) as from_ours:
        await ours.send_async("app")
    with pytest.raises(RuntimeError) as from_theirs:
        await theirs.send_async("app")
    assert str(from_ours.value) == str(from_theirs.value) == "Cannot send to a non-coroutine function."


def test_guard_refuses_a_plain_blinker_signal(bus: EventBus) -> None:
    with pytest.raises(
        TypeError,
        match=r"^signal must be a blinker_events\.Signal to be guarded; bridge\(\) a plain blinker signal instead$",
    ):
        bus.guard(blinker.Signal())


@pytest.mark.parametrize("bad", ["not a bus", 42])
def test_signal_guard_refuses_what_is_not_a_bus_naming_it(bad: Any) -> None:
    sig = be.Signal()
    with pytest.raises(TypeError, match=f"^bus must be an EventBus or None, not {type(bad).__name__}$"):
        sig.guard(bad)
    assert sig.guarded_by is None


# -- guarded: sending through the bus ---------------------------------------------


@pytest.mark.parametrize("how", HOW)
def test_guarded_send_calls_mixed_receivers_blinker_style_in_order(bus: EventBus, how: str) -> None:
    """From send(): sync receivers inline, then async ones; every one called fn(sender, **kwargs) and the results
    come back in connection order, with no _async_wrapper."""
    sig = be.Signal()
    guard(sig, bus, how)
    sender = Sender("app")
    calls: list[tuple[str, Any, int, int]] = []

    def sync1(sender: Any, /, *, a: int, b: int) -> str:
        calls.append(("sync1", sender, a, b))
        return "s1"

    async def async1(sender: Any, /, *, a: int, b: int) -> str:
        calls.append(("async1", sender, a, b))
        await asyncio.sleep(0.01)
        return "a1"

    def sync2(sender: Any, /, *, a: int, b: int) -> str:
        calls.append(("sync2", sender, a, b))
        return "s2"

    async def async2(sender: Any, /, *, a: int, b: int) -> str:
        calls.append(("async2", sender, a, b))
        return "a2"

    for receiver in (sync1, async1, sync2, async2):
        sig.connect(receiver)

    results = sig.send(sender, a=1, b=2)

    assert results == [(sync1, "s1"), (async1, "a1"), (sync2, "s2"), (async2, "a2")]
    assert calls == [
        ("sync1", sender, 1, 2),
        ("sync2", sender, 1, 2),
        ("async1", sender, 1, 2),
        ("async2", sender, 1, 2),
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("how", HOW)
async def test_guarded_send_async_calls_mixed_receivers_without_sync_wrapper(bus: EventBus, how: str) -> None:
    sig = be.Signal()
    guard(sig, bus, how)
    sender = Sender("app")
    calls: dict[str, tuple[Any, int]] = {}

    def sync1(sender: Any, /, *, n: int) -> str:
        calls["sync1"] = (sender, n)
        return "s1"

    async def async1(sender: Any, /, *, n: int) -> str:
        await asyncio.sleep(0.01)
        calls["async1"] = (sender, n)
        return "a1"

    def sync2(sender: Any, /, *, n: int) -> str:
        calls["sync2"] = (sender, n)
        return "s2"

    async def async2(sender: Any, /, *, n: int) -> str:
        calls["async2"] = (sender, n)
        return "a2"

    for receiver in (sync1, async1, sync2, async2):
        sig.connect(receiver)

    results = await sig.send_async(sender, n=7)

    assert results == [(sync1, "s1"), (async1, "a1"), (sync2, "s2"), (async2, "a2")]
    assert calls == dict.fromkeys(("sync1", "async1", "sync2", "async2"), (sender, 7))


@pytest.mark.parametrize("when", ["guarded first", "published first", "guarded last"])
def test_plain_receivers_and_subscriptions_on_an_own_signal_run_in_connection_order(bus: EventBus, when: str) -> None:
    # The bus is told of no plain ``connect`` on a signal it does not own:
    # a plain receiver it meets later still takes its place by connection.
    sig = be.Signal()
    calls: list[str] = []

    def plain_1(sender: Any, **kwargs: Any) -> str:
        calls.append("plain_1")
        return "p1"

    def plain_2(sender: Any, **kwargs: Any) -> str:
        calls.append("plain_2")
        return "p2"

    def subscribed(event: Event) -> str:
        calls.append("subscribed")
        return "s"

    if when == "guarded first":
        sig.guard(bus)
    elif when == "published first":
        bus.publish_sync(Event(sig))
    sig.connect(plain_1)
    sub = bus.subscribe(sig, subscribed)
    sig.connect(plain_2)
    if when != "guarded first":
        sig.guard(bus)
    assert sig.send("app") == [(plain_1, "p1"), (subscribed, "s"), (plain_2, "p2")]
    bus.publish_sync(Event(sig))
    assert calls == ["plain_1", "subscribed", "plain_2"] * 2
    assert [s.callback for s in bus.get_subscriptions(sig)] == [plain_1, subscribed, plain_2]
    assert sub in bus.get_subscriptions(sig)
    sig.unguard()


def test_an_unguarded_send_of_an_own_signal_calls_its_subscriptions_with_the_event(bus: EventBus) -> None:
    # Unguarded, the send is blinker's: the subscription is one of its
    # receivers, called with the event a guarded send would make.
    sig = be.Signal()
    sender = Sender("app")
    got: list[Event] = []

    def subscribed(event: Event) -> str:
        got.append(event)
        return "s"

    sub = bus.subscribe(sig, subscribed)
    assert sig.send(sender, order=7) == [(sub, "s")]
    (event,) = got
    assert (event.event_type, event.data, event.source) == (sig, {"order": 7}, sender)
    assert bus.get_history(sig) == []  # blinker's send: the bus saw nothing


@pytest.mark.parametrize("subscribed_to", ["the type", "its signal"])
def test_a_plain_send_of_the_buss_own_signal_with_an_event_passes_that_event_on(
    bus: EventBus, subscribed_to: str
) -> None:
    signal = bus.signal_for("orders.placed")
    got: list[Event] = []
    sub = bus.subscribe("orders.placed" if subscribed_to == "the type" else signal, got.append)
    event = Event("orders.placed", {"n": 1})
    assert signal.send("app", event=event) == [(sub, None)]
    assert got == [event]


def test_a_plain_send_of_the_buss_own_signal_without_an_event_makes_one_as_for_any_signal(bus: EventBus) -> None:
    # It used to list the subscriptions as having answered None without
    # running them (found from outside). Unguarded, the send is blinker's:
    # sync subscriptions run with the event its arguments make, an async
    # one is refused as blinker refuses a coroutine receiver.
    signal = bus.signal_for("orders.placed")
    got: list[Event] = []

    def bill(event: Event) -> str:
        got.append(event)
        return "billed"

    sub = bus.subscribe("orders.placed", bill)
    assert signal.send("shop", order=42) == [(sub, "billed")]
    (event,) = got
    assert (event.event_type, event.data, event.source) == ("orders.placed", {"order": 42}, "shop")
    assert bus.get_history() == []  # blinker's send: the bus saw nothing

    async def email(event: Event) -> None:
        raise AssertionError("never started")

    bus.subscribe("orders.placed", email)
    with pytest.raises(RuntimeError, match=r"email is async: guard the signal, or publish, to run it"):
        signal.send("shop", order=43)


def test_a_plain_send_of_an_event_classs_signal_without_an_event_is_refused_naming_the_class(bus: EventBus) -> None:
    got: list[Shipped] = []
    bus.subscribe(Shipped, got.append)
    with pytest.raises(TypeError, match=r"takes .*Shipped events: send one as event=\.\.\., or publish it"):
        bus.signal_for(Shipped).send("shop", order=1)
    assert got == []


def test_an_unguarded_send_of_an_own_signal_refuses_an_async_subscription_as_blinker_does(bus: EventBus) -> None:
    sig = be.Signal()

    async def subscribed(event: Event) -> None:
        raise AssertionError("never started")

    bus.subscribe(sig, subscribed)
    with pytest.raises(RuntimeError, match=r"subscribed is async: guard the signal, or publish, to run it"):
        sig.send("app")
    sig.guard(bus)
    assert [type(result) for _, result in sig.send("app")] == [AssertionError]  # guarded, it runs


def test_guarded_send_ignores_async_wrapper(bus: EventBus) -> None:
    sig = be.Signal().guard(bus)

    async def receiver(sender: Any) -> str:
        return "done"

    def wrapper(fn: Any) -> Any:
        raise AssertionError("the _async_wrapper must not be used when guarded")

    sig.connect(receiver)
    assert sig.send("app", _async_wrapper=wrapper) == [(receiver, "done")]


@pytest.mark.parametrize("how", HOW)
def test_guarded_send_returns_exceptions_and_timeouts_as_results(new_bus: Callable[..., EventBus], how: str) -> None:
    bus = new_bus(timeout=0.2)
    sig = be.Signal()
    guard(sig, bus, how)
    raised: list[BaseException] = []

    def bad(sender: Any) -> None:
        raised.append(ValueError("bad receiver"))
        raise raised[-1]

    async def slow(sender: Any) -> None:
        await asyncio.sleep(3)

    def good(sender: Any) -> str:
        return "ok"

    for receiver in (bad, slow, good):
        sig.connect(receiver)

    results = sig.send("app")

    assert [receiver for receiver, _ in results] == [bad, slow, good]
    assert results[0][1] is raised[0]
    assert type(results[1][1]) is EventTimeoutError
    assert f"{name_of(slow)} overran its timeout of 0.2s" in str(results[1][1])
    assert results[2] == (good, "ok")


def test_guarded_raising_receiver_does_not_stop_the_others(bus: EventBus) -> None:
    sig = be.Signal().guard(bus)
    ran: list[str] = []

    def first(sender: Any) -> None:
        ran.append("first")

    def bad(sender: Any) -> None:
        ran.append("bad")
        raise KeyError("boom")

    def last(sender: Any) -> None:
        ran.append("last")

    for receiver in (first, bad, last):
        sig.connect(receiver)

    results = sig.send("app")

    assert ran == ["first", "bad", "last"]
    assert [receiver for receiver, _ in results] == [first, bad, last]
    assert type(results[1][1]) is KeyError
    assert results[0][1] is None
    assert results[2][1] is None
    report = bus.get_delivery_reports(sig)[-1]
    assert [sub.callback for sub, _ in report.failed] == [bad]
    assert [sub.callback for sub in report.succeeded] == [first, last]


@pytest.mark.asyncio
async def test_guarded_hung_sync_receiver_on_send_async_times_out_and_later_receivers_run(
    new_bus: Callable[..., EventBus], release: threading.Event
) -> None:
    bus = new_bus(timeout=0.2)
    sig = be.Signal().guard(bus)
    ran: list[str] = []

    def hung(sender: Any) -> str:
        release.wait(3)
        return "late"

    def after(sender: Any) -> str:
        ran.append("after")
        return "after"

    async def also(sender: Any) -> str:
        ran.append("also")
        return "also"

    for receiver in (hung, after, also):
        sig.connect(receiver)

    started = time.perf_counter()
    results = await sig.send_async("app")
    elapsed = time.perf_counter() - started

    assert elapsed < 1.5
    assert [receiver for receiver, _ in results] == [hung, after, also]
    assert type(results[0][1]) is EventTimeoutError
    assert results[1:] == [(after, "after"), (also, "also")]
    assert sorted(ran) == ["after", "also"]


def test_guarded_hung_async_receiver_on_send_times_out(new_bus: Callable[..., EventBus]) -> None:
    bus = new_bus(timeout=0.2)
    sig = be.Signal().guard(bus)
    cancelled: list[bool] = []

    def before(sender: Any) -> str:
        return "before"

    async def hung(sender: Any) -> None:
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def after(sender: Any) -> str:
        return "after"

    for receiver in (before, hung, after):
        sig.connect(receiver)

    started = time.perf_counter()
    results = sig.send("app")
    elapsed = time.perf_counter() - started

    assert elapsed < 1.5
    assert [receiver for receiver, _ in results] == [before, hung, after]
    assert results[0] == (before, "before")
    assert type(results[1][1]) is EventTimeoutError
    assert results[2] == (after, "after")
    assert cancelled == [True]
    assert [sub.callback for sub in bus.get_delivery_reports(sig)[-1].timed_out] == [hung]


def test_guarded_send_with_propagation_raises_after_every_receiver_ran(new_bus: Callable[..., EventBus]) -> None:
    bus = new_bus(propagate_exceptions=True)
    sig = be.Signal().guard(bus)
    ran: list[str] = []
    error = ValueError("bad receiver")

    def bad(sender: Any) -> None:
        ran.append("bad")
        raise error

    def after(sender: Any) -> None:
        ran.append("after")

    async def also(sender: Any) -> None:
        ran.append("also")

    for receiver in (bad, after, also):
        sig.connect(receiver)

    with pytest.raises(ValueError) as info:
        sig.send("app")
    assert info.value is error
    assert ran == ["bad", "after", "also"]


@pytest.mark.asyncio
async def test_guarded_send_async_with_propagation_raises_after_every_receiver_ran(
    new_bus: Callable[..., EventBus],
) -> None:
    bus = new_bus(propagate_exceptions=True)
    sig = be.Signal().guard(bus)
    ran: list[str] = []
    error = ValueError("bad receiver")

    async def bad(sender: Any) -> None:
        ran.append("bad")
        raise error

    def after(sender: Any) -> None:
        ran.append("after")

    for receiver in (bad, after):
        sig.connect(receiver)

    with pytest.raises(ValueError) as info:
        await sig.send_async("app")
    assert info.value is error
    assert sorted(ran) == ["after", "bad"]


@pytest.mark.asyncio
async def test_guarded_muted_signal_sends_nothing(bus: EventBus) -> None:
    sig = be.Signal().guard(bus)
    ran: list[Any] = []

    def receiver(sender: Any) -> None:
        ran.append(sender)

    sig.connect(receiver)
    with sig.muted():
        assert sig.send("app") == []
        assert await sig.send_async("app") == []
    assert ran == []
    assert bus.get_history(sig) == []


def test_guarded_sender_specific_receivers_only_get_their_sender(bus: EventBus) -> None:
    sig = be.Signal().guard(bus)
    alice, bob = Sender("alice"), Sender("bob")
    got: list[tuple[str, Any]] = []

    def for_alice(sender: Any) -> str:
        got.append(("for_alice", sender))
        return "alice-only"

    def for_all(sender: Any) -> str:
        got.append(("for_all", sender))
        return "all"

    sig.connect(for_alice, sender=alice)
    sig.connect(for_all)

    assert sig.send(bob) == [(for_all, "all")]
    assert sig.send(alice) == [(for_alice, "alice-only"), (for_all, "all")]
    assert got == [("for_all", bob), ("for_alice", alice), ("for_all", alice)]


def test_guarded_route_follows_connect_disconnect_and_collected_receivers(bus: EventBus) -> None:
    """The bus caches a guarded signal's route; every change must drop it."""
    sig = be.Signal().guard(bus)

    def first(sender: Any) -> int:
        return 1

    def second(sender: Any) -> int:
        return 2

    sig.connect(first)
    assert sig.send("app") == [(first, 1)]
    sig.connect(second)
    assert sig.send("app") == [(first, 1), (second, 2)]
    sig.disconnect(first)
    assert sig.send("app") == [(second, 2)]

    def third(sender: Any) -> int:
        return 3

    with sig.connected_to(third):
        assert sig.send("app") == [(second, 2), (third, 3)]
    assert sig.send("app") == [(second, 2)]

    def temporary(sender: Any) -> int:
        return 4

    sig.connect(temporary)  # weakly held, blinker's default
    assert sig.send("app") == [(second, 2), (temporary, 4)]
    del temporary
    gc.collect()
    assert sig.send("app") == [(second, 2)]


def test_guarded_failing_receiver_is_auto_disabled_and_announced(new_bus: Callable[..., EventBus]) -> None:
    bus = new_bus(failure_threshold=2)
    sig = be.Namespace().signal("saves").guard(bus)
    calls: list[int] = []
    announced: list[Event] = []

    def on_disabled(event: Event) -> None:
        announced.append(event)

    bus.subscribe(SystemEventType.SUBSCRIBER_DISABLED, on_disabled)

    def bad(sender: Any, n: int) -> None:
        calls.append(n)
        raise ValueError("always fails")

    def good(sender: Any, n: int) -> int:
        return n

    sig.connect(bad)
    sig.connect(good)

    first = sig.send("app", n=1)
    assert [receiver for receiver, _ in first] == [bad, good]
    assert announced == []
    second = sig.send("app", n=2)
    assert [receiver for receiver, _ in second] == [bad, good]
    assert sig.send("app", n=3) == [(good, 3)]
    assert sig.send("app", n=4) == [(good, 4)]
    assert calls == [1, 2]

    reports = bus.get_delivery_reports(sig)
    disabled_sub = reports[1].disabled[0]
    assert disabled_sub.callback is bad
    assert disabled_sub.disabled is True
    assert [(sub.callback, reason) for sub, reason, _ in reports[2].skipped] == [(bad, "disabled")]
    assert len(announced) == 1
    assert announced[0].event_type is SystemEventType.SUBSCRIBER_DISABLED
    assert announced[0].source == bus.name
    assert dict(announced[0].data) == {
        "subscription_id": disabled_sub.id,
        "receiver": name_of(bad),
        "event_type": "saves",
        "failures": 2,
        "error": "ValueError('always fails')",
    }


def test_guarded_cycle_guard_stops_a_receiver_resending_its_signal(bus: EventBus) -> None:
    sig = be.Signal().guard(bus)
    calls: list[Any] = []
    inner: list[list[tuple[Any, Any]]] = []

    def loop_back(sender: Any) -> str:
        calls.append(sender)
        inner.append(sig.send(sender))
        return "handled"

    sig.connect(loop_back)

    assert sig.send("app") == [(loop_back, "handled")]
    assert calls == ["app"]
    assert inner == [[]]
    inner_report, outer_report = bus.get_delivery_reports(sig)
    [(skipped_sub, reason, error)] = inner_report.skipped
    assert skipped_sub.callback is loop_back
    assert reason == "cycle"
    assert type(error) is CircularEventError
    assert [sub.callback for sub in outer_report.succeeded] == [loop_back]


def test_guarded_reconnected_receiver_starts_afresh(new_bus: Callable[..., EventBus]) -> None:
    bus = new_bus(failure_threshold=1)
    sig = be.Signal().guard(bus)
    calls: list[int] = []

    def flaky(sender: Any) -> str:
        calls.append(len(calls))
        if len(calls) == 1:
            raise ValueError("first call fails")
        return "flaky"

    def other(sender: Any) -> str:
        return "other"

    sig.connect(flaky)
    sig.connect(other)
    assert [receiver for receiver, _ in sig.send("app")] == [flaky, other]  # flaky is disabled now
    assert sig.send("app") == [(other, "other")]
    sig.disconnect(flaky)
    sig.connect(flaky)
    assert sig.send("app") == [(other, "other"), (flaky, "flaky")]
    assert calls == [0, 1]


def test_guarded_disconnect_releases_a_strongly_connected_receiver(new_bus: Callable[..., EventBus]) -> None:
    bus = new_bus(history_size=0)  # the history's reports would keep the receiver's subscription
    sig = be.Signal().guard(bus)

    class Receiver:
        def __call__(self, sender: Any) -> str:
            return "called"

    receiver = Receiver()
    ref = weakref.ref(receiver)
    sig.connect(receiver, weak=False)
    assert sig.send("app") == [(receiver, "called")]
    sig.disconnect(receiver)
    del receiver
    gc.collect()
    assert ref() is None


def test_guarded_sends_are_in_the_history(bus: EventBus) -> None:
    sig = be.Signal().guard(bus)
    app = Sender("app")

    def receiver(sender: Any, **kwargs: Any) -> None:
        pass

    sig.connect(receiver)
    sig.send(app, a=1, b="x")
    sig.send(app, a=2)

    events = bus.get_history(sig)
    assert [dict(e.data) for e in events] == [{"a": 1, "b": "x"}, {"a": 2}]
    assert all(e.source is app for e in events)
    assert all(e.event_type is sig for e in events)


def test_guarded_signal_reaches_a_catch_all_subscribed_after_its_first_send(bus: EventBus) -> None:
    sig = be.Signal().guard(bus)
    seen: list[dict[str, Any]] = []

    def catch_all(event: Event) -> None:
        seen.append(dict(event.data))

    def receiver(sender: Any, **kwargs: Any) -> None:
        pass

    sig.connect(receiver)
    sig.send("app", n=1)
    bus.subscribe(None, catch_all)
    sig.send("app", n=2)
    assert seen == [{"n": 2}]


def test_unguard_restores_blinker_behaviour(bus: EventBus) -> None:
    sig = be.Signal().guard(bus)
    error = ValueError("bad receiver")

    def bad(sender: Any) -> None:
        raise error

    sig.connect(bad)
    assert sig.send("app") == [(bad, error)]
    assert len(bus.get_history(sig)) == 1

    sig.unguard()
    assert sig.guarded_by is None
    with pytest.raises(ValueError) as info:
        sig.send("app")
    assert info.value is error
    sig.disconnect(bad)

    async def receiver(sender: Any) -> None:
        pass

    sig.connect(receiver)
    with pytest.raises(RuntimeError, match=r"^Cannot send to a coroutine function\.$"):
        sig.send("app")
    assert len(bus.get_history(sig)) == 1
    sig.unguard()  # unguarding twice is harmless
    assert sig.guarded_by is None


def test_guarding_by_a_second_bus_moves_the_signal(new_bus: Callable[..., EventBus]) -> None:
    first, second = new_bus(), new_bus()
    sig = be.Signal().guard(first)

    def receiver(sender: Any, n: int) -> int:
        return n

    sig.connect(receiver)
    assert sig.send("app", n=1) == [(receiver, 1)]
    second.guard(sig)
    assert sig.guarded_by is second
    assert sig.send("app", n=2) == [(receiver, 2)]
    assert [dict(e.data) for e in first.get_history(sig)] == [{"n": 1}]
    assert [dict(e.data) for e in second.get_history(sig)] == [{"n": 2}]
    first.unguard(sig)  # not first's any more: no effect
    assert sig.guarded_by is second


# -- bridges ------------------------------------------------------------------------


def flask_style_signal() -> blinker.NamedSignal:
    """Flask's request_finished when Flask is installed, else an equivalent signal of a blinker Namespace."""
    try:
        from flask.signals import request_finished  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return blinker.Namespace().signal("request-finished")
    return request_finished  # type: ignore[no-any-return,unused-ignore]


def test_bridge_derives_the_event_type_from_the_signal_name(bus: EventBus) -> None:
    name = "blinker_events.tests.test_compat.bridged"
    sig = blinker.signal(name)
    try:
        assert bus.bridge(sig) == name
        seen: list[Event] = []
        bus.subscribe(name, seen.append)
        sig.send("app", a=1)
        assert [(e.event_type, e.source, dict(e.data)) for e in seen] == [(name, "app", {"a": 1})]
    finally:
        bus.unbridge(sig)


def test_bridge_with_an_explicit_event_type(bus: EventBus) -> None:
    sig = blinker.Signal()
    assert bus.bridge(sig, Demo.PING) is Demo.PING
    seen: list[Event] = []
    bus.subscribe(Demo.PING, seen.append)
    sig.send("app", n=1)
    assert [(e.event_type, e.source, dict(e.data)) for e in seen] == [(Demo.PING, "app", {"n": 1})]


def test_bridge_of_an_unnamed_signal_needs_an_event_type(bus: EventBus) -> None:
    sig = blinker.Signal()
    with pytest.raises(ValueError, match=r"^event_type: an unnamed signal needs one to be bridged$"):
        bus.bridge(sig)
    assert sig.receivers == {}


def test_bridging_a_signal_twice_is_refused(bus: EventBus) -> None:
    sig = blinker.Namespace().signal("twice")
    bus.bridge(sig)
    with pytest.raises(ValueError, match="already bridged"):
        bus.bridge(sig)
    with pytest.raises(ValueError, match="already bridged"):
        bus.bridge(sig, "other-name")
    assert len(sig.receivers) == 1


def test_bridged_flask_style_signal_fails_and_times_out_without_the_sender_noticing(
    new_bus: Callable[..., EventBus],
) -> None:
    bus = new_bus(timeout=0.2)
    sig = flask_style_signal()
    app, response = Sender("app"), object()
    plain_calls: list[tuple[Any, dict[str, Any]]] = []

    def plain(sender: Any, **kwargs: Any) -> str:
        plain_calls.append((sender, kwargs))
        return "plain result"

    def failing(event: Event) -> None:
        raise RuntimeError("receiver failed")

    async def hung(event: Event) -> None:
        await asyncio.sleep(3)

    sig.connect(plain)
    try:
        event_type = bus.bridge(sig)
        assert event_type == "request-finished"
        failing_sub = bus.subscribe(event_type, failing)
        hung_sub = bus.subscribe(event_type, hung)

        started = time.perf_counter()
        results = sig.send(app, response=response)
        elapsed = time.perf_counter() - started
    finally:
        bus.unbridge(sig)
        sig.disconnect(plain)

    assert elapsed < 1.5
    assert len(results) == 2
    assert results[0] == (plain, "plain result")  # blinker still calls the signal's own receivers
    assert results[1][1] is None  # the relay: it returns nothing and raised nothing
    assert plain_calls == [(app, {"response": response})]
    [report] = bus.get_delivery_reports(event_type)
    assert report.event.source is app
    assert dict(report.event.data) == {"response": response}
    assert [(sub, type(exc)) for sub, exc in report.failed] == [(failing_sub, RuntimeError)]
    assert report.timed_out == [hung_sub]


def test_bridge_never_raises_into_the_sender_even_with_propagation(
    new_bus: Callable[..., EventBus], caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus(propagate_exceptions=True)
    sig = blinker.Namespace().signal("propagating")
    bus.bridge(sig)

    def failing(event: Event) -> None:
        raise RuntimeError("receiver failed")

    bus.subscribe("propagating", failing)
    with caplog.at_level(logging.ERROR, logger="blinker_events"):
        results = sig.send("app")
    assert [result for _, result in results] == [None]
    assert "bridge: relaying a send of propagating failed" in [r.getMessage() for r in caplog.records]


def _send_and_collect(new_bus: Callable[..., EventBus], *, failing: bool) -> tuple[weakref.ref[Sender], list[Any]]:
    bus = new_bus(history_size=0)
    sig = blinker.Namespace().signal("collected")
    bus.bridge(sig)
    seen: list[Any] = []

    def good(event: Event) -> None:
        seen.append(dict(event.data))

    def bad(event: Event) -> None:
        raise RuntimeError("receiver failed")

    if failing:
        bus.subscribe("collected", bad)
    bus.subscribe("collected", good)
    sender = Sender("short-lived")
    ref = weakref.ref(sender)
    sig.send(sender, n=1)
    del sender
    gc.collect()
    return ref, seen


def test_bridge_holds_no_strong_reference_to_the_sender(new_bus: Callable[..., EventBus]) -> None:
    ref, seen = _send_and_collect(new_bus, failing=False)
    assert seen == [{"n": 1}]
    assert ref() is None


def test_bridge_holds_no_strong_reference_to_the_sender_when_a_receiver_fails(
    new_bus: Callable[..., EventBus],
) -> None:
    ref, seen = _send_and_collect(new_bus, failing=True)
    assert seen == [{"n": 1}]
    assert ref() is None


def test_unbridge_removes_the_relay(bus: EventBus) -> None:
    sig = blinker.Namespace().signal("removable")
    bus.bridge(sig)
    seen: list[Event] = []
    bus.subscribe("removable", seen.append)
    sig.send("app", n=1)
    assert bus.unbridge(sig) is True
    assert bus.unbridge(sig) is False
    assert sig.receivers == {}
    assert sig.send("app", n=2) == []
    assert [dict(e.data) for e in seen] == [{"n": 1}]
    assert [dict(e.data) for e in bus.get_history("removable")] == [{"n": 1}]
    assert bus.bridge(sig) == "removable"  # can be bridged again after unbridging


def test_a_bridge_does_not_keep_its_bus_alive() -> None:
    """Signals are often module globals: a relay holding its bus strongly
    kept the bus, its history and the events' sources alive for good."""
    sig = blinker.Namespace().signal("global-ish")
    bus = EventBus()
    bus.bridge(sig)
    bus.subscribe("global-ish", lambda event: None)
    sig.send("sender", n=1)
    bus_ref = weakref.ref(bus)
    assert bus.shutdown(timeout=5) == 0
    del bus
    gc.collect()
    assert bus_ref() is None
    assert sig.receivers == {}  # the collected bus took its relay off the signal
    assert sig.send("sender", n=2) == []


def test_a_bridge_goes_with_its_sender_and_a_new_sender_can_be_bridged() -> None:
    """A bridge keyed by a dead sender's id used to stay, refusing a new
    sender that reused the id, and its relay stayed on the signal."""
    sig = blinker.Namespace().signal("per-sender")
    bus = EventBus()
    try:
        for _ in range(20):
            sender = Sender("app")
            bus.bridge(sig, "per-sender", sender=sender)
            assert len(sig.receivers) == 1
            del sender
            gc.collect()
            assert sig.receivers == {}
            assert bus._registry.bridges == {}
    finally:
        assert bus.shutdown(timeout=5) == 0


@pytest.mark.parametrize("kind", ["guarded drop-in", "bus signal"])
def test_receiver_connected_receivers_run_without_the_bus_lock(bus: EventBus, kind: str) -> None:
    """blinker sends receiver_connected from inside connect; a receiver of it
    that waits on a thread which subscribes used to deadlock on the bus lock."""
    sig = be.Signal().guard(bus) if kind == "guarded drop-in" else bus.signal_for("connected-kind")
    finished: list[bool] = []

    def on_connected(signal: Any, **kwargs: Any) -> None:
        worker = threading.Thread(target=lambda: bus.subscribe("elsewhere", lambda event: None))
        worker.start()
        worker.join(5)
        finished.append(not worker.is_alive())

    sig.receiver_connected.connect(on_connected)
    sig.connect(lambda sender, **kwargs: None, weak=False)
    assert finished == [True]


def test_unguard_lets_the_signal_go(bus: EventBus) -> None:
    sig = be.Signal().guard(bus)
    sig.connect(lambda sender, **kwargs: None, weak=False)
    sig.send("x")
    ref = weakref.ref(sig)
    sig.unguard()
    bus.clear_history()  # the history's events name the signal as their type
    del sig
    gc.collect()
    assert ref() is None


@pytest.mark.asyncio
async def test_guarded_send_async_keeps_no_sender_behind() -> None:
    bus = EventBus(history_size=0)
    sig = be.Signal()
    sig.guard(bus)

    def receiver(sender: Any) -> str:
        return "sync"

    sig.connect(receiver)  # runs on a pool thread, which then idles
    sender = Sender("short-lived")
    ref = weakref.ref(sender)
    assert [result for _, result in await sig.send_async(sender)] == ["sync"]
    del sender
    assert all_collected([ref])
    sig.unguard()
    assert bus.shutdown(timeout=10) == 0


def test_guarded_send_results_are_the_senders_not_kept_by_the_history(bus: EventBus) -> None:
    """A bound-method receiver returning its own object: the sender gets the
    result; the history's report does not keep it, so the component is
    still collected (and unsubscribed) as any bound method is."""
    sig = be.Signal()
    sig.guard(bus)

    class Component:
        def on_send(self, sender: Any) -> Any:
            return self

    component = Component()
    ref = weakref.ref(component)
    sig.connect(component.on_send)
    assert sig.send("sender") == [(component.on_send, component)]
    assert bus.get_delivery_reports()[-1].results is None
    del component
    assert all_collected([ref])
    assert sig.send("sender") == []
