"""Who listens: references, memory, cost and thread safety of subscribing
(issue 11, items 9, 10, 11, 13 and 15)."""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from blinker import Signal

from blinker_events import Event, EventBus

from .conftest import Demo


class _Component:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.seen.append(event)


class _OddSize:
    __slots__ = ("__weakref__", *(f"s{i}" for i in range(37)))


def _noop(event: Event) -> None:
    pass


# -- item 9: tags do not keep a component alive --------------------------------


def test_component_tagged_as_source_is_collected_and_unsubscribes_itself(bus: EventBus) -> None:
    component = _Component()
    bus.subscribe(Demo.PING, component.on_event, source=component)
    bus.subscribe(Demo.PONG, _noop, source=component)
    signal = bus.signal_for(Demo.PONG)
    gone = weakref.ref(component)
    del component
    gc.collect()
    assert gone() is None
    assert signal.receivers == {}  # at once, not at the next change
    assert bus.get_subscriptions() == []
    assert bus.get_subscriber_count(Demo.PONG) == 0
    assert bus.publish_sync(Event(Demo.PONG)).succeeded == []


def test_component_given_as_sender_is_collected_and_unsubscribes_itself(bus: EventBus) -> None:
    component = _Component()
    bus.subscribe(Demo.PING, _noop, sender=component)
    bus.subscribe(None, _noop, sender=component)
    gone = weakref.ref(component)
    del component
    gc.collect()
    assert gone() is None
    assert bus.get_subscriptions() == []
    assert bus.publish_sync(Event(Demo.PING, source=_Component())).succeeded == []


def test_source_tag_that_cannot_be_weakly_referenced_is_kept(bus: EventBus) -> None:
    sub = bus.subscribe(Demo.PING, _noop, source="checkout")
    gc.collect()
    assert sub.source == "checkout"
    assert bus.unsubscribe_by_source("checkout") == 1


def test_live_component_keeps_its_tags_and_filters(bus: EventBus) -> None:
    component = _Component()
    sub = bus.subscribe(Demo.PING, component.on_event, source=component, sender=component)
    gc.collect()
    assert sub.source is component
    assert sub.sender is component
    bus.publish_sync(Event(Demo.PING, source=component))
    bus.publish_sync(Event(Demo.PING, source="someone else"))
    assert [e.source for e in component.seen] == [component]
    assert bus.unsubscribe_by_source(component) == 1


def test_tag_held_by_nothing_else_ends_its_subscription_at_once(bus: EventBus) -> None:
    sub = bus.subscribe(Demo.PING, _noop, source=_Component())
    gc.collect()
    assert not sub.active
    assert bus.get_subscriptions() == []


# -- item 10: nothing left behind ------------------------------------------------


def test_signal_with_no_subscription_left_is_dropped(bus: EventBus) -> None:
    for i in range(200):
        bus.subscribe(f"type-{i}", _noop)
        assert bus.unsubscribe(f"type-{i}", _noop) == 1
    for i in range(200, 400):
        bus.subscribe(f"type-{i}", _noop).unsubscribe()
    assert bus._registry.signals == {}


def test_held_signal_keeps_its_plain_receivers_after_the_last_subscription_goes(bus: EventBus) -> None:
    signal = bus.signal_for("orders")
    bus.subscribe("orders", _noop)
    bus.unsubscribe("orders", _noop)
    seen: list[Any] = []

    def plain(sender: Any, **kwargs: Any) -> None:
        seen.append(sender)

    signal.connect(plain)
    assert bus.signal_for("orders") is signal
    assert len(bus.publish_sync(Event("orders", source="s")).succeeded) == 1
    assert seen == ["s"]


def test_signal_with_a_plain_receiver_is_kept_while_the_receiver_lives(bus: EventBus) -> None:
    seen: list[Any] = []

    def plain(sender: Any, **kwargs: Any) -> None:
        seen.append(sender)

    bus.signal_for("orders").connect(plain)
    gc.collect()
    bus.publish_sync(Event("orders", source="s"))
    assert seen == ["s"]


# -- item 11: cost independent of other subscriptions -----------------------------


def test_subscribe_and_unsubscribe_do_not_look_at_other_subscriptions(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counting calls of callbacks' weak references, not time: a scan calls
    # every other subscription's WeakMethod.
    components = [_Component() for _ in range(2000)]
    for component in components:
        bus.subscribe(Demo.PING, component.on_event)
    calls = 0
    original = weakref.WeakMethod.__call__

    def counting(self: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(self)

    newcomer = _Component()
    monkeypatch.setattr(weakref.WeakMethod, "__call__", counting)
    bus.subscribe(Demo.PING, newcomer.on_event)
    bus.subscribe(Demo.PING, newcomer.on_event)
    assert bus.unsubscribe(Demo.PING, newcomer.on_event) == 1
    monkeypatch.undo()
    assert calls < 20
    assert bus.get_subscriber_count(Demo.PING) == 2000


def test_twenty_thousand_bound_methods_subscribe_and_unsubscribe_quickly(bus: EventBus) -> None:
    import time

    components = [_Component() for _ in range(20000)]
    started = time.perf_counter()
    for component in components:
        bus.subscribe(Demo.PING, component.on_event)
    for component in components:
        assert bus.unsubscribe(Demo.PING, component.on_event) == 1
    # Generous: a scan per call took minutes; linear cost takes well under a second.
    assert time.perf_counter() - started < 20
    assert bus.get_subscriptions() == []


# -- item 13: concurrent subscribe(sender=) and unsubscribe ------------------------


def test_concurrent_subscribe_with_sender_and_unsubscribe_never_raise(bus: EventBus) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def churn() -> None:
        start.wait()
        try:
            for _ in range(100):
                senders = [_Component() for _ in range(50)]  # new ones: new keys in blinker's dicts
                for sender in senders:
                    bus.subscribe(Demo.PING, _noop, sender=sender)
                    bus.unsubscribe(Demo.PING, _noop)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so the race shows
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert all(not t.is_alive() for t in threads)


# -- item 15: counts and collected receivers ---------------------------------------


def test_subscriber_count_leaves_out_disabled_subscriptions() -> None:
    bus = EventBus(failure_threshold=1)
    try:

        def broken(event: Event) -> None:
            raise RuntimeError("broken")

        failing = bus.subscribe(Demo.PING, broken)
        bus.subscribe(Demo.PING, _noop)
        bus.publish_sync(Event(Demo.PING))
        assert failing.disabled
        assert bus.get_subscriber_count(Demo.PING) == 1
        assert bus.get_subscriber_count() == 1
        assert bus.get_subscriptions(Demo.PING, disabled=True) == [failing]
        failing.enable()
        assert bus.get_subscriber_count(Demo.PING) == 2
    finally:
        bus.shutdown(timeout=10)


def test_subscriber_count_of_a_foreign_signal_counts_plain_receivers_before_any_publish(bus: EventBus) -> None:
    signal = Signal("foreign")

    def plain(sender: Any, **kwargs: Any) -> None:
        pass

    signal.connect(plain)
    assert bus.get_subscriber_count(signal) == 1
    bus.subscribe(signal, _noop)
    assert bus.get_subscriber_count(signal) == 2


def test_signal_for_drops_a_collected_weak_receiver_at_once(bus: EventBus) -> None:
    signal = bus.signal_for("orders")

    def plain(sender: Any, **kwargs: Any) -> None:
        pass

    signal.connect(plain)
    assert len(signal.receivers) == 1
    del plain
    gc.collect()
    assert signal.receivers == {}
    assert not signal.has_receivers_for("anyone")


@contextlib.contextmanager
def _lock_held_by_another_thread(bus: EventBus) -> Iterator[None]:
    """For the block, another thread holds the bus's lock: one changing
    subscriptions, frozen mid-change."""
    held, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with bus._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert held.wait(5)
        yield
    finally:
        release.set()
        holder.join(10)


def test_weak_receiver_collected_while_the_lock_is_busy_leaves_at_the_next_publish(bus: EventBus) -> None:
    signal = bus.signal_for("orders")
    calls: list[Any] = []

    def plain(sender: Any, **kwargs: Any) -> None:
        calls.append(sender)

    signal.connect(plain)
    with _lock_held_by_another_thread(bus):
        del plain
        gc.collect()  # must not wait for the lock: that could deadlock
        assert len(signal.receivers) == 1
    report = bus.publish_sync(Event("orders"))
    assert report.succeeded == []
    assert signal.receivers == {}
    assert calls == []


def test_sender_whose_cleanup_was_deferred_does_not_leak_into_a_new_sender_with_its_id(bus: EventBus) -> None:
    signal = bus.signal_for("orders")
    calls: list[str] = []

    def old_receiver(sender: Any, **kwargs: Any) -> None:
        calls.append("old")

    def new_receiver(sender: Any, **kwargs: Any) -> None:
        calls.append("new")

    # Senders of a size little else has, with neighbours kept alive, so the
    # freed one's memory is the next of its size that CPython hands out.
    neighbours = [_OddSize() for _ in range(8)]
    old = neighbours.pop(4)
    old_id = id(old)
    signal.connect(old_receiver, sender=old)
    with _lock_held_by_another_thread(bus):
        del old  # freed at once (no cycle); its cleanup is deferred: the lock is busy
        new = _OddSize()
        assert id(new) == old_id
    signal.connect(new_receiver, sender=new)
    bus.publish_sync(Event("orders", source=new))
    assert calls == ["new"]
    assert len(neighbours) == 7


def test_receiver_disconnected_receivers_run_without_the_bus_lock(bus: EventBus) -> None:
    signal = bus.signal_for(Demo.PING)
    free: list[bool] = []

    def on_disconnect(changed: Any, **kwargs: Any) -> None:
        # Waits for another thread that subscribes: a deadlock (here, a
        # timeout) if the bus lock were held while this runs.
        other = threading.Thread(target=bus.subscribe, args=(Demo.PONG, _noop))
        other.start()
        other.join(5)
        free.append(not other.is_alive())

    def plain(sender: Any, **kwargs: Any) -> None:
        pass

    signal.receiver_disconnected.connect(on_disconnect)
    bus.subscribe(Demo.PING, _noop)
    signal.connect(plain)
    assert bus.unsubscribe(Demo.PING, _noop) == 1
    assert bus.unsubscribe(Demo.PING, plain) == 1
    bus.subscribe(Demo.PING, _noop, source="owner").unsubscribe()
    bus.subscribe(Demo.PING, _noop, source="owner")
    assert bus.unsubscribe_by_source("owner") == 1
    assert free == [True, True, True, True]
