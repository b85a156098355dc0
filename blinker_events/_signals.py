"""Event-type signals and the routes the bus computes from them.

Each event type the bus sees gets an :class:`EventSignal`, a real
``blinker.NamedSignal``: its receiver list is where the bus's subscriptions
live, and a plain blinker receiver connected to it directly is delivered to
as well, with the same guards.

Sending must not take a lock or walk blinker's bookkeeping on every event.
So each signal caches a :class:`Route` -- the receivers in delivery order,
split into sync and async -- and every mutation (connect, disconnect, a
weakly held receiver or sender being collected) drops the cache under the
bus lock. A publisher reads ``signal.route`` once; a route is an immutable
snapshot, so a concurrent subscribe or unsubscribe never changes the set a
running publish iterates (the Django dispatcher's approach).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from blinker import ANY, NamedSignal, Signal
from blinker._utilities import make_id
from blinker.base import ANY_ID

from ._subscription import Subscription

__all__ = ["Adapters", "EventSignal", "Route", "build_route"]


class Route:
    """Who receives one event type, in delivery order (order of attachment).

    ``filters[i]`` is None when ``subs[i]`` takes events from any source,
    else the set of blinker sender ids it accepts.
    """

    __slots__ = ("async_subs", "collect", "filtered", "filters", "subs", "sync_subs")

    def __init__(
        self, subs: list[Subscription], filters: list[frozenset[Hashable] | None], collect: bool = False
    ) -> None:
        #: Whether publishes should record return values (a drop-in
        #: Signal's ``send`` returns them).
        self.collect = collect
        self.subs = tuple(subs)
        self.filters = tuple(filters)
        self.filtered = any(f is not None for f in filters)
        self.sync_subs = tuple(s for s in subs if not s.is_async)
        self.async_subs = tuple(s for s in subs if s.is_async)

    def for_source(self, source: Any) -> Route:
        """This route restricted to receivers that accept ``source``."""
        if not self.filtered:
            return self
        sid = make_id(source)
        keep = [(s, f) for s, f in zip(self.subs, self.filters, strict=True) if f is None or sid in f]
        return Route([s for s, _ in keep], [f for _, f in keep], self.collect)


class EventSignal(NamedSignal):
    """The blinker signal of one event type on one bus.

    Mutations take the bus lock and drop the cached route; everything else is
    blinker's own behaviour.
    """

    def __init__(self, name: str, lock: threading.RLock, event_type: Any) -> None:
        super().__init__(name)
        self.event_type = event_type
        self.route: Route | None = None
        self._lock = lock
        self.adapters = Adapters()

    def connect(self, receiver: Any, sender: Any = ANY, weak: bool = True) -> Any:
        # blinker's connect sends receiver_connected, whose receivers must not
        # run under the bus lock; the cached route is dropped afterwards, under
        # it, so a route built meanwhile cannot outlive the change.
        self.adapters.seqs.setdefault(make_id(receiver), Subscription.next_seq())
        result = super().connect(receiver, sender, weak)
        with self._lock:
            self.route = None
        return result

    def _disconnect(self, receiver_id: Hashable, sender_id: Hashable) -> None:
        with self._lock:
            super()._disconnect(receiver_id, sender_id)
            if receiver_id not in self.receivers:
                self.adapters.forget(receiver_id)
            self.route = None

    def _clear_state(self) -> None:
        with self._lock:
            super()._clear_state()
            for receiver_id in list(self.adapters.by_receiver):
                self.adapters.forget(receiver_id)
            self.route = None

    # Weak-reference callbacks run inside the garbage collector, possibly in
    # a thread that holds the bus lock mid-change; they only drop the route,
    # and the stale entry is swept on the next rebuild (blinker's
    # receivers_for does the same sweep).
    def _make_cleanup_receiver(self, receiver_id: Hashable) -> Callable[[Any], None]:
        def cleanup(_: Any) -> None:
            self.route = None

        return cleanup

    def _make_cleanup_sender(self, sender_id: Hashable) -> Callable[[Any], None]:
        inner = super()._make_cleanup_sender(sender_id)

        def cleanup(ref: Any) -> None:
            self.route = None
            inner(ref)

        return cleanup


class Adapters:
    """The subscriptions standing for receivers connected to a signal with
    plain blinker ``connect``, kept across route rebuilds so their failure
    counts and disabled state survive, with each receiver's place in the
    delivery order (given when connected, or when first seen on a signal
    the bus does not own)."""

    __slots__ = ("by_receiver", "seqs")

    def __init__(self) -> None:
        self.by_receiver: dict[Hashable, Subscription] = {}
        self.seqs: dict[Hashable, int] = {}

    def forget(self, receiver_id: Hashable) -> None:
        self.seqs.pop(receiver_id, None)
        adapter = self.by_receiver.pop(receiver_id, None)
        if adapter is not None:
            adapter.active = False

    def adapter(self, receiver_id: Hashable, held: Any, bus: Any, event_type: Any, kwargs: bool) -> Subscription | None:
        """The adapter for one receiver; None if it was weakly held and is gone."""
        is_weak = isinstance(held, weakref.ref)
        fn = held() if is_weak else held
        if fn is None:
            return None
        adapter = self.by_receiver.get(receiver_id)
        if adapter is None or not adapter.active or adapter.callback is not fn:
            adapter = Subscription(bus, event_type, fn, weak=is_weak, plain=True, kwargs=kwargs)
            adapter.seq = self.seqs.setdefault(receiver_id, Subscription.next_seq())
            self.by_receiver[receiver_id] = adapter
        return adapter


def build_route(signal: Signal, adapters: Adapters, event_type: Any, wildcards: list[Subscription], bus: Any) -> Route:
    """Compute the route for ``signal`` plus the bus's catch-all subscriptions.
    Subscriptions other buses connected to the same (foreign) signal are
    theirs to deliver. The caller holds the bus lock."""
    # A guarded drop-in Signal calls its receivers the blinker way and
    # returns their results; see blinker_events._compat.
    blinker_style = getattr(signal, "blinker_style", False)
    pairs: list[tuple[Subscription, frozenset[Hashable] | None]] = []
    for receiver_id, held in list(signal.receivers.items()):
        if isinstance(held, Subscription):
            if held._bus is not bus:
                continue
            sub: Subscription | None = held
        else:
            sub = adapters.adapter(receiver_id, held, bus, event_type, blinker_style)
        if sub is None:
            signal._disconnect(receiver_id, ANY_ID)
            continue
        senders = signal._by_receiver.get(receiver_id, ())
        pairs.append((sub, None if ANY_ID in senders else frozenset(senders)))
    for sub in wildcards:
        pairs.append((sub, None if sub.sender is ANY else frozenset([make_id(sub.sender)])))
    pairs.sort(key=lambda pair: pair[0].seq)
    return Route([s for s, _ in pairs], [f for _, f in pairs], blinker_style)
