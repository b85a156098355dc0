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

import contextlib
import sys
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from blinker import ANY, NamedSignal, Signal

from ._interop import ANY_ID, disconnect_by_id, make_id, make_ref, senders_of
from ._subscription import Subscription
from ._types import TypeKey

if TYPE_CHECKING:
    from ._events import Event
    from ._report import DeliveryReport

__all__ = ["Adapters", "EventSignal", "GuardingBus", "Route", "announce_disconnected", "build_route"]


class GuardingBus(Protocol):
    """What a guarded signal asks of the bus guarding it."""

    _lock: threading.RLock

    def guard(self, signal: Signal) -> None: ...

    def unguard(self, signal: Signal) -> None: ...

    def _forget_receiver(self, signal: Signal, receiver_id: Any) -> None: ...

    def publish_sync(self, event: Event) -> DeliveryReport: ...

    async def publish(self, event: Event) -> DeliveryReport: ...


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

    Every change to blinker's bookkeeping (connect, disconnect, a weakly
    held receiver or sender collected) happens under the bus lock and drops
    the cached route; receiver_connected's receivers run after, without the
    lock. Everything else is blinker's own behaviour.

    A signal is *pinned* in the bus's ``pinned`` dict while it has receivers
    and only then: an event type nobody listens to any more leaves nothing
    behind. Whoever holds the signal (from ``bus.signal_for``) still has the
    bus's signal, found again by the bus and pinned again when connected to.
    """

    def __init__(
        self, name: str, lock: threading.RLock, event_type: Any, pinned: dict[TypeKey, EventSignal], key: TypeKey
    ) -> None:
        super().__init__(name)
        self.event_type = event_type
        self.route: Route | None = None
        self._lock = lock
        self.adapters = Adapters()
        self._pinned = pinned
        self._key = key
        # Cleanups a garbage-collector callback could not run at once (see
        # _cleanup_later); run by the next change under the lock.
        self._deferred: list[Callable[[], None]] = []

    def connect(self, receiver: Any, sender: Any = ANY, weak: bool = True) -> Any:
        # blinker's connect, with its bookkeeping under the bus lock (another
        # thread's disconnect iterates the same dicts) and receiver_connected
        # sent after, without the lock: its receivers may subscribe in turn.
        receiver_id = make_id(receiver)
        sender_id = ANY_ID if sender is ANY else make_id(sender)
        with self._lock:
            self._drop_if_collected(receiver_id, sender_id)
            self.adapters.seqs.setdefault(receiver_id, Subscription._next_seq())
            if weak:
                self.receivers[receiver_id] = make_ref(receiver, self._make_cleanup_receiver(receiver_id))
            else:
                self.receivers[receiver_id] = receiver
            self._by_sender[sender_id].add(receiver_id)
            self._by_receiver[receiver_id].add(sender_id)
            if sender is not ANY and sender_id not in self._weak_senders:
                with contextlib.suppress(TypeError):  # a sender that cannot be weakly referenced
                    self._weak_senders[sender_id] = make_ref(sender, self._make_cleanup_sender(sender_id))
            self._changed()
        if "receiver_connected" in self.__dict__ and self.receiver_connected.receivers:
            try:
                self.receiver_connected.send(self, receiver=receiver, sender=sender, weak=weak)
            except TypeError:  # as blinker does
                self.disconnect(receiver, sender)
                raise
        return receiver

    def _disconnect(self, receiver_id: Hashable, sender_id: Hashable) -> None:
        # blinker's, touching only the receiver's own senders (blinker walks
        # every sender's set) and dropping what becomes empty.
        with self._lock:
            if sender_id == ANY_ID:
                for sid in self._by_receiver.pop(receiver_id, ()):
                    self._discard_from_sender(sid, receiver_id)
                self.receivers.pop(receiver_id, None)
            else:
                self._discard_from_sender(sender_id, receiver_id)
                senders = self._by_receiver.get(receiver_id)
                if senders is not None:
                    senders.discard(sender_id)
            if receiver_id not in self.receivers:
                self.adapters.forget(receiver_id)
            self._changed()

    def _drop_if_collected(self, receiver_id: Hashable, sender_id: Hashable) -> None:
        """Before a connect: a collected receiver or sender whose cleanup was
        deferred may have left entries under the id the new one reuses;
        they go first, so nothing of the old one carries over."""
        held = self.receivers.get(receiver_id)
        if isinstance(held, weakref.ref) and held() is None:
            self._disconnect(receiver_id, ANY_ID)
        known = self._weak_senders.get(sender_id)
        if known is not None and known() is None:
            self._drop_sender(sender_id)

    def _discard_from_sender(self, sender_id: Hashable, receiver_id: Hashable) -> None:
        bucket = self._by_sender.get(sender_id)
        if bucket is None:
            return
        bucket.discard(receiver_id)
        if not bucket and sender_id != ANY_ID:
            del self._by_sender[sender_id]
            self._weak_senders.pop(sender_id, None)

    def _clear_state(self) -> None:
        with self._lock:
            super()._clear_state()
            for receiver_id in list(self.adapters.by_receiver):
                self.adapters.forget(receiver_id)
            self._changed()

    def _changed(self) -> None:
        """After a change, lock held: run deferred cleanups, drop the route,
        and pin the signal while it has receivers (unpin it once it has none)."""
        while self._deferred:
            self._deferred.pop()()
        self.route = None
        if self.receivers:
            self._pinned[self._key] = self
        elif self._pinned.get(self._key) is self:
            del self._pinned[self._key]

    # Weak-reference callbacks run inside the garbage collector, in whatever
    # thread allocated; they clean up at once when the bus lock is free (as
    # blinker does) and otherwise leave it to the next change or route
    # rebuild. Never waiting for the lock is what keeps them from deadlocking
    # against a thread that holds it. A thread re-entering its own lock here
    # is safe: code under the lock iterates copies of blinker's dicts. A
    # deferred cleanup acts only if its own reference is still the one filed
    # (a new receiver or sender may reuse the id by then).
    def _make_cleanup_receiver(self, receiver_id: Hashable) -> Callable[[Any], None]:
        def cleanup(ref: Any) -> None:
            def run() -> None:
                if self.receivers.get(receiver_id) is ref:
                    self._disconnect(receiver_id, ANY_ID)

            self._cleanup_later(run)

        return cleanup

    def _make_cleanup_sender(self, sender_id: Hashable) -> Callable[[Any], None]:
        def cleanup(ref: Any) -> None:
            def run() -> None:
                if self._weak_senders.get(sender_id) is ref:
                    self._drop_sender(sender_id)

            self._cleanup_later(run)

        return cleanup

    def _drop_sender(self, sender_id: Hashable) -> None:
        with self._lock:
            self._weak_senders.pop(sender_id, None)
            for receiver_id in self._by_sender.pop(sender_id, ()):
                senders = self._by_receiver.get(receiver_id)
                if senders is not None:
                    senders.discard(sender_id)
            self._changed()

    def _cleanup_later(self, cleanup: Callable[[], None]) -> None:
        self.route = None
        if sys.is_finalizing():
            return
        if self._lock.acquire(blocking=False):
            try:
                cleanup()
            finally:
                self._lock.release()
        else:
            self._deferred.append(cleanup)

    def settle(self) -> None:
        """Run cleanups deferred by the garbage collector; lock held."""
        if self._deferred:
            self._changed()


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

    def adapter(
        self, receiver_id: Hashable, held: Any, bus: Any, event_type: Any, kwargs: bool, place: int
    ) -> Subscription | None:
        """The adapter for one receiver; None if it was weakly held and is
        gone. ``place``: its place in the delivery order if it has none yet
        (it was not connected through a signal of this bus)."""
        is_weak = isinstance(held, weakref.ref)
        fn = held() if is_weak else held
        if fn is None:
            return None
        adapter = self.by_receiver.get(receiver_id)
        if adapter is None or not adapter.active or adapter.callback is not fn:
            adapter = Subscription(bus, event_type, fn, weak=is_weak, plain=True, kwargs=kwargs)
            adapter.seq = self.seqs.setdefault(receiver_id, place)
            self.by_receiver[receiver_id] = adapter
        return adapter


def build_route(
    signal: Signal, adapters: Adapters, event_type: Any, wildcards: Iterable[Subscription], bus: Any
) -> Route:
    """Compute the route for ``signal`` plus the bus's catch-all subscriptions.
    Subscriptions other buses connected to the same (foreign) signal are
    theirs to deliver. The caller holds the bus lock."""
    # A guarded drop-in Signal calls its receivers the blinker way and
    # returns their results; see blinker_events._compat.
    blinker_style = getattr(signal, "blinker_style", False)
    if isinstance(signal, EventSignal):
        signal.settle()
    pairs: list[tuple[Subscription, frozenset[Hashable] | None]] = []
    # The signal's receivers are in connection order. A plain receiver first
    # met here (on a signal the bus does not own, which tells it of no
    # connect) is placed right after the one before it, so the bus's own
    # subscriptions and the plain receivers keep that order.
    before = 0
    for receiver_id, held in list(signal.receivers.items()):
        if isinstance(held, Subscription):
            if held._bus is not bus or not held.active:
                continue  # another bus's, or ended and not yet swept
            sub: Subscription | None = held
        else:
            sub = adapters.adapter(receiver_id, held, bus, event_type, blinker_style, before + 1)
        if sub is None:
            disconnect_by_id(signal, receiver_id)
            continue
        before = sub.seq
        senders = senders_of(signal, receiver_id)
        pairs.append((sub, None if ANY_ID in senders else frozenset(senders)))
    for sub in wildcards:
        if sub.active:
            pairs.append((sub, None if sub.sender_id == ANY_ID else frozenset([sub.sender_id])))
    pairs.sort(key=lambda pair: pair[0].seq)
    return Route([s for s, _ in pairs], [f for _, f in pairs], blinker_style)


def announce_disconnected(signal: Signal, receiver: Any) -> None:
    """What blinker's ``disconnect`` sends after a change, for a receiver
    the bus took off ``signal``; never under the bus lock."""
    if "receiver_disconnected" in signal.__dict__ and signal.receiver_disconnected.receivers:
        signal.receiver_disconnected.send(signal, receiver=receiver, sender=ANY)
