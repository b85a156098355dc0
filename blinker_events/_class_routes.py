"""Who receives an event of a typed event class: the receivers of that
class and of every typed event class it derives from, and the catch-alls.

A receiver subscribed to a class receives the events of its subclasses
(see :mod:`._typed`). That is resolved when a route is built -- once per
class until who listens changes -- never per publish: the class's route is
cached on its signal (or, for a class nobody subscribed to directly, in the
registry's cache of class routes), and a change to who listens to any
class drops every class route, since a subclass's route includes it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from ._interop import ANY_ID
from ._signals import EventSignal, Route, build_route
from ._subscription import Subscription
from ._typed import is_event_class
from ._types import TypeKey

__all__ = ["ClassRoutes", "ClassSignal"]


class ClassSignal(EventSignal):
    """The signal of a typed event class: every change to its receivers also
    runs ``changed`` (lock held), which drops the routes of its subclasses."""

    def __init__(
        self,
        name: str,
        lock: threading.RLock,
        event_type: Any,
        pinned: dict[TypeKey, EventSignal],
        key: TypeKey,
        changed: Callable[[], None],
    ) -> None:
        super().__init__(name, lock, event_type, pinned, key)
        self._class_changed = changed

    def _changed(self) -> None:
        super()._changed()
        self._class_changed()


class ClassRoutes:
    """The routes of typed event classes nobody subscribed to directly (a
    class with a signal of its own caches its route there), keyed weakly by
    class; and how any class's route is built. The registry's lock guards
    every change."""

    __slots__ = ("_cache", "_signals")

    def __init__(self, signals: dict[TypeKey, EventSignal]) -> None:
        self._signals = signals
        self._cache: weakref.WeakKeyDictionary[type, Route] = weakref.WeakKeyDictionary()

    def cached(self, cls: type) -> Route | None:
        return self._cache.get(cls)

    def keep(self, cls: type, route: Route) -> Route:
        self._cache[cls] = route
        return route

    def forget(self) -> None:
        """Who listens to some class changed: drop every class route."""
        self._cache.clear()
        for signal in list(self._signals.values()):
            if isinstance(signal, ClassSignal):
                signal.route = None

    def build(self, cls: type, wildcards: Iterable[Subscription], bus: Any) -> Route:
        """The route of ``cls``: the receivers of each typed event class in
        its MRO, then the catch-alls, in the order they subscribed. A class
        declared ``collect=True`` collects return values."""
        pairs: list[tuple[Subscription, frozenset[Hashable] | None]] = []
        for base in cls.__mro__:
            signal = self._signals.get(id(base)) if is_event_class(base) else None
            if signal is not None:
                own = build_route(signal, signal.adapters, base, (), bus)
                pairs.extend(zip(own.subs, own.filters, strict=True))
        for sub in wildcards:
            if sub.active:
                pairs.append((sub, None if sub.sender_id == ANY_ID else frozenset([sub.sender_id])))
        pairs.sort(key=lambda pair: pair[0].seq)
        return Route([s for s, _ in pairs], [f for _, f in pairs], bool(getattr(cls, "collect", False)))
