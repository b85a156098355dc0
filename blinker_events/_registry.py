"""Who listens to what: the bus's signals, subscriptions and routes.

:class:`Registry`, held by each :class:`~blinker_events.EventBus`, changes and
answers "who receives this event": one blinker signal per event type, the
subscriptions, drop-in signals the bus guards, relays bridged from signals it
does not own, and the cached :class:`~._signals.Route` of each type. Every
change happens under one reentrant lock, never held while a receiver runs;
publishing only reads a route, immutable once built.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar, overload

from blinker import ANY, NamedSignal, Signal

from ._bridges import Bridges, drop_all_bridges
from ._checks import check_flag, check_timeout
from ._class_routes import ClassRoutes, ClassSignal
from ._events import Event, EventTypeLike
from ._index import SubscriptionIndex
from ._interop import disconnect_by_id, make_id
from ._signals import Adapters, EventSignal, Route, announce_disconnected, build_route
from ._subscription import Subscription
from ._typed import is_event_class
from ._types import TYPE_REGISTRY, TypeKey, event_type_name, same_source, type_key

if TYPE_CHECKING:
    from ._signals import GuardingBus

__all__ = ["Registry"]

F = TypeVar("F", bound=Callable[..., Any])

#: Stands for the signal of an event type nobody subscribed to.
_NO_SIGNAL = Signal()


class Registry:
    """Signals, subscriptions and routes of one bus, its ``owner``: what a
    guarded drop-in signal names as ``guarded_by``, and where relays
    publish. The bus holds its registry and delegates to it."""

    def __init__(self, owner: GuardingBus) -> None:
        self._owner = owner
        # Guards every change to who listens. Reentrant: blinker's connect
        # fires receiver_connected, whose receivers may subscribe in turn.
        self.lock = threading.RLock()
        # The signals of event types with receivers, pinned by the signals
        # themselves (see EventSignal); the publish hot path looks here.
        self.signals: dict[TypeKey, EventSignal] = {}
        # Every signal still alive, pinned or held by someone who asked
        # signal_for: one signal per type for as long as anyone has it.
        self._known: weakref.WeakValueDictionary[TypeKey, EventSignal] = weakref.WeakValueDictionary()
        # blinker Signals used as event types: not ours, so no cached route (unless
        # a drop-in Signal this bus guards); the adapters of their plain receivers are ours.
        self._foreign: dict[TypeKey, Signal] = {}
        self._foreign_adapters: dict[TypeKey, Adapters] = {}
        self.bridges = Bridges()
        # A collected bus takes its relays off the signals they were on.
        weakref.finalize(owner, drop_all_bridges, self.bridges)
        # Catch-all subscriptions by id, in order of subscription.
        self._wildcards: dict[int, Subscription] = {}
        self._wild_route: Route | None = None
        # Typed event classes: their receivers include their bases' (see _class_routes).
        self._classes = ClassRoutes(self.signals)
        self._index = SubscriptionIndex()
        self.subscriptions = self._index.by_id  # read-only here: changed through the index
        self._dead: list[Subscription] = []

    # -- signals and routes ----------------------------------------------

    @overload
    def signal_for(self, event_type: Enum | str | type[Event]) -> NamedSignal: ...

    @overload
    def signal_for(self, event_type: Signal) -> Signal: ...

    def signal_for(self, event_type: EventTypeLike) -> Signal:
        """The blinker signal of ``event_type`` on this bus, made on first use.

        A receiver connected to it with plain blinker ``connect`` is called
        on publish as ``fn(event.source, event=event)``, with every guard. A
        blinker ``Signal`` used as event type is its own signal.

        The bus keeps the signal while it has receivers; once it has none,
        only as long as someone holds it, so a type nobody listens to any
        more leaves nothing behind. Asking again, or connecting to the held
        signal, gives the same signal.

        :returns: a :class:`blinker.NamedSignal` (the ``Signal`` itself for a signal).
        :raises TypeError: ``event_type`` is not an event type.
        """
        key = type_key(event_type)
        signal = self._signal_of(key)
        if signal is not None:
            return signal
        with self.lock:
            signal = self._signal_of(key)
            if signal is None:
                TYPE_REGISTRY.remember(event_type)
                if isinstance(event_type, Signal):
                    signal = self._foreign[key] = event_type
                    self._foreign_adapters[key] = Adapters()
                elif is_event_class(event_type):
                    name = event_type_name(event_type)
                    signal = ClassSignal(name, self.lock, event_type, self.signals, key, self._classes.forget)
                    self._known[key] = signal
                else:
                    name = event_type_name(event_type)
                    signal = self._known[key] = EventSignal(name, self.lock, event_type, self.signals, key)
            return signal

    def _signal_of(self, key: TypeKey) -> Signal | None:
        signal: Signal | None = self.signals.get(key)
        if signal is None:
            signal = self._known.get(key)
        return self._foreign.get(key) if signal is None else signal

    def route(self, event: Event) -> Route:
        """Who receives ``event``: a cached snapshot, rebuilt after changes."""
        key = event._key
        signal = self.signals.get(key)
        if signal is not None:
            route = signal.route
            if route is None:
                with self.lock:
                    route = signal.route = self._build_route(key, event._event_type)
        elif key in self._foreign or isinstance(event._event_type, Signal):
            foreign = self.signal_for(event._event_type)
            if getattr(foreign, "guarded_by", None) is self._owner:
                # A drop-in Signal this bus guards drops the cache on change.
                route = foreign.route  # type: ignore[attr-defined]
                if route is None:
                    with self.lock:
                        route = foreign.route = self._build_route(key)  # type: ignore[attr-defined]
            else:
                # Any other blinker signal tells us of no change, so its
                # route is rebuilt on every publish.
                with self.lock:
                    route = self._build_route(key)
        elif is_event_class(event._event_type):  # only its bases are listened to
            cls: Any = event._event_type
            route = self._classes.cached(cls)
            if route is None:
                with self.lock:
                    route = self._classes.keep(cls, self._build_route(key, cls))
        else:
            route = self._wild_route
            if route is None:
                with self.lock:
                    route = self._wild_route = self._build_route(key)
        return route.for_source(event._source) if route.filtered else route

    # -- signals the bus does not own -------------------------------------

    def guard(self, signal: Signal) -> None:
        """Send a drop-in :class:`blinker_events.Signal` through this bus
        (what ``signal.guard(bus)`` does); a signal has one guarding bus.

        :raises TypeError: ``signal`` is not a :class:`blinker_events.Signal`.
        """
        me = self._owner
        previous = getattr(signal, "guarded_by", None)
        if previous is not None and previous is not me:
            previous.unguard(signal)
        self.signal_for(signal)
        with self.lock:
            signal.guarded_by = me  # type: ignore[attr-defined]
            signal.route = None  # type: ignore[attr-defined]

    def unguard(self, signal: Signal) -> None:
        """Stop guarding a drop-in signal; its ``send`` is blinker's again.

        :raises TypeError: ``signal`` is not a :class:`blinker_events.Signal`."""
        with self.lock:
            if getattr(signal, "guarded_by", None) is self._owner:
                signal.guarded_by = None  # type: ignore[attr-defined]
                signal.route = None  # type: ignore[attr-defined]
                key = type_key(signal)
                if not any(s.event_type is signal for s in list(self.subscriptions.values())):
                    # Nothing of this bus's hangs on it: let it go.
                    self._foreign.pop(key, None)
                    self._foreign_adapters.pop(key, None)

    def is_relayed(self, key: TypeKey) -> bool:
        """Whether a bridged blinker signal publishes events of this type
        (their data are the signal's keyword arguments: Python objects)."""
        return key in self.bridges.relayed

    def _build_route(self, key: TypeKey, event_type: Any = None) -> Route:
        """The route of the event type filed under ``key``; lock held.
        ``event_type``: the type, which may have lost its signal since the
        caller looked (a class's route still has its bases' receivers)."""
        self._sweep()
        wildcards = list(self._wildcards.values())
        signal = self.signals.get(key)
        cls = event_type if signal is None else signal.event_type
        if is_event_class(cls):
            return self._classes.build(cls, wildcards, self)
        if signal is not None:
            return build_route(signal, signal.adapters, signal.event_type, wildcards, self)
        foreign = self._foreign.get(key)
        if foreign is not None:
            return build_route(foreign, self._foreign_adapters[key], foreign, wildcards, self)
        return build_route(_NO_SIGNAL, Adapters(), None, wildcards, self)

    def _invalidate_routes(self) -> None:
        self._wild_route = None
        self._classes.forget()
        for signal in list(self.signals.values()):
            signal.route = None
        for foreign in list(self._foreign.values()):
            if getattr(foreign, "guarded_by", None) is self._owner:
                foreign.route = None  # type: ignore[attr-defined]

    def forget_receiver(self, signal: Signal, receiver_id: Any) -> None:
        """A guarded drop-in signal's receiver is gone: drop its adapter,
        so a reconnect starts afresh and nothing keeps it alive."""
        adapters = self._foreign_adapters.get(type_key(signal))
        if adapters is not None:
            adapters.forget(receiver_id)

    # -- subscribing ---------------------------------------------------------

    def subscribe(
        self,
        event_type: EventTypeLike | None,
        callback: Callable[..., Any] | None = None,
        *,
        source: Any = None,
        sender: Any = ANY,
        timeout: float | None = None,
        reentrant: bool = False,
        weak: bool | None = None,
    ) -> Subscription | Callable[[F], F]:
        """Call ``callback(event)`` for each event of ``event_type`` (every
        event type, including later ones, when None). Without ``callback``,
        a decorator that subscribes the function and returns it unchanged.

        ``source`` tags the subscription with its owner for
        :meth:`unsubscribe_by_source` (it does not filter events); ``sender``
        delivers only events whose ``source`` is that object. ``timeout``
        overrides the bus's default for this receiver. ``reentrant=True`` lets the receiver be re-entered by
        events its own handling caused, up to ``max_depth``. Bound methods
        are held weakly (the subscription ends when the object is
        collected); anything else strongly, unless ``weak`` says otherwise.
        The same callback subscribed to the same type with the same
        ``source``, ``sender``, ``timeout`` and ``reentrant`` again returns the
        existing subscription; with any different, the receiver runs twice.

        :param event_type: an event type, or None for every event.
        :param callback: called as ``callback(event)``; sync or async.
        :param source: the owner's tag, for :meth:`unsubscribe_by_source`.
        :param sender: deliver only events whose ``source`` is this object.
        :param timeout: this receiver's timeout; None: the bus default.
        :param reentrant: may be re-entered by events its own handling caused.
        :param weak: hold ``callback`` weakly (True) or strongly (False); None:
            weakly for bound methods only.
        :returns: the :class:`Subscription`, or a decorator without ``callback``.
        :raises TypeError, ValueError: a bad ``event_type``, a ``callback`` that is
            not callable, a bad ``timeout``, or a flag that is not a bool.
        """
        if event_type is not None:
            type_key(event_type)
        timeout = check_timeout(timeout)
        reentrant = check_flag(reentrant, "reentrant")
        if weak is not None:
            weak = check_flag(weak, "weak")
        if callback is None:

            def decorator(fn: F) -> F:
                if not callable(fn):
                    raise TypeError(f"callback must be callable, not {type(fn).__name__}")
                self.subscribe(
                    event_type, fn, source=source, sender=sender, timeout=timeout, reentrant=reentrant, weak=weak
                )
                return fn

            return decorator
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        options = {"source": source, "sender": sender, "timeout": timeout, "reentrant": reentrant, "weak": weak}
        sub = Subscription(self, event_type, callback, **options)
        with self.lock:
            self._sweep()
            existing = self._index.find_same(sub)
            if existing is not None:
                return existing
            self._index.add(sub)
            if event_type is None:
                self._wildcards[sub.id] = sub
                self._invalidate_routes()
                return sub
            signal = self.signal_for(event_type)
        # Outside the lock: blinker's connect runs receiver_connected
        # receivers (its own bookkeeping takes the lock; see EventSignal).
        signal.connect(sub, sender=sender, weak=False)
        if not sub.active:  # unsubscribed by another thread in between
            signal.disconnect(sub)
        return sub

    def unsubscribe(self, event_type: EventTypeLike | None, callback: Callable[..., Any]) -> int:
        """Remove every subscription of ``callback`` to ``event_type`` (None:
        its catch-all subscriptions), including a receiver connected to the
        type's signal with plain blinker ``connect``. Returns how many.
        Costs the same however many other subscriptions the bus has.

        :returns: how many subscriptions were removed.
        :raises TypeError: a bad ``event_type``, or ``callback`` is not callable.
        """
        key = None if event_type is None else type_key(event_type)
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        with self.lock:
            matches = self._index.of_callback(key, callback)
            signal = None if key is None else self._signal_of(key)
            if signal is not None and make_id(callback) not in signal.receivers:
                signal = None
            if signal is not None:  # a plain blinker receiver of the type
                disconnect_by_id(signal, make_id(callback))
        if signal is not None:
            announce_disconnected(signal, callback)
        return self.remove_subscriptions(matches) + (signal is not None)

    def unsubscribe_by_source(self, source: Any) -> int:
        """Remove every subscription tagged with ``source``; returns how many.
        ``None`` is refused: it is the tag of every untagged subscription.
        (Tags are compared by identity, then equality, so this looks at every
        subscription; a tag that cannot be compared is not ``source``.)

        :returns: how many subscriptions were removed.
        :raises ValueError: ``source`` is None.
        """
        if source is None:
            raise ValueError("source must not be None: untagged subscriptions have no owner to remove them by")
        with self.lock:
            tagged = [s for s in list(self.subscriptions.values()) if same_source(s.source, source)]
        return self.remove_subscriptions(tagged)

    def remove_subscriptions(self, subs: list[Subscription], *, announce: bool = True) -> int:
        """Detach ``subs``; how many were attached. Blinker's
        receiver_disconnected is sent after the lock is released (call this
        without holding it); ``announce=False`` (for collected ones) skips
        it, as blinker does for a collected receiver."""
        removed = 0
        detached: list[tuple[Signal, Any]] = []
        with self.lock:
            for sub in subs:
                if not sub.active and sub.id not in self.subscriptions:
                    continue
                sub.active = False
                self._index.discard(sub)
                removed += 1
                if sub.event_type is None:
                    del self._wildcards[sub.id]
                    self._invalidate_routes()
                else:
                    assert sub.type_key is not None
                    signal = self._signal_of(sub.type_key)
                    target = sub.callback if sub.plain else sub
                    if signal is None or target is None:
                        continue
                    disconnect_by_id(signal, make_id(target))
                    detached.append((signal, target))
        if announce:
            for signal, target in detached:
                announce_disconnected(signal, target)
        return removed

    def note_dead(self, sub: Subscription) -> None:
        # From a weakref callback (see Subscription._on_collected): swept at
        # once if the lock is free, never waiting for it (see EventSignal),
        # else by the next change or route rebuild. Code under the lock
        # iterates copies, so a sweep re-entering it from the same thread
        # changes nothing being iterated.
        self._dead.append(sub)
        self._wild_route = None
        if sub.type_key is not None:
            signal = self.signals.get(sub.type_key)
            if signal is not None:
                signal.route = None
        if not sys.is_finalizing() and self.lock.acquire(blocking=False):
            try:
                self._sweep()
            finally:
                self.lock.release()

    def _sweep(self) -> None:
        """Detach subscriptions whose weakly held callback, source or sender
        was collected."""
        if self._dead:
            with self.lock:
                dead = []
                while self._dead:  # pop, not swap: a GC callback may append meanwhile
                    dead.append(self._dead.pop())
                self.remove_subscriptions(dead, announce=False)

    def get_subscriptions(
        self, event_type: EventTypeLike | None = None, *, disabled: bool | None = None
    ) -> list[Subscription]:
        """Active subscriptions, in delivery order: to ``event_type`` (and
        catch-alls) when given, else all. ``disabled`` filters by state.
        For a blinker ``Signal``, its plain receivers are listed from the
        start (the bus adopts the signal, as its first publish would).

        :param event_type: an event type, or None for all.
        :param disabled: True: only disabled ones; False: only enabled ones; None: both.
        :returns: a list of :class:`Subscription`.
        :raises TypeError: ``event_type`` is not an event type, or ``disabled`` not a bool or None.
        """
        if disabled is not None:
            disabled = check_flag(disabled, "disabled")
        self._sweep()
        if event_type is None:
            with self.lock:
                subs = sorted(self.subscriptions.values(), key=lambda s: s.seq)
        else:
            key = type_key(event_type)
            if isinstance(event_type, Signal):
                self.signal_for(event_type)
            with self.lock:
                subs = list(self._build_route(key, event_type).subs)
        subs = [s for s in subs if s.active and s.callback is not None]
        return subs if disabled is None else [s for s in subs if s.disabled is disabled]

    def get_subscriber_count(self, event_type: EventTypeLike | None = None) -> int:
        """How many receivers an event of ``event_type`` reaches (catch-alls
        and plain blinker receivers included; disabled subscriptions reach
        nothing, so they are left out), or, for None, how many of the bus's
        subscriptions are enabled. ``get_subscriptions(disabled=True)``
        lists the disabled ones.

        :returns: a count of receivers.
        :raises TypeError: ``event_type`` is not an event type.
        """
        return len(self.get_subscriptions(event_type, disabled=False))
