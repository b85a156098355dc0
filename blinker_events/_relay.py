"""Bridges: relays that publish the sends of blinker signals a bus does
not own (see :meth:`~._registry.Registry.bridge`)."""

from __future__ import annotations

import logging
import threading
import weakref
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

from blinker import Signal

from ._events import Event, EventTypeLike, TypeKey, shown_name, type_key

if TYPE_CHECKING:
    from ._bus import EventBus
    from ._registry import Registry

__all__ = ["Bridges", "Relay", "drop_all_bridges", "drop_bridge"]

logger = logging.getLogger("blinker_events")


class Bridges(dict[tuple[int, Any], tuple[Signal, "Relay"]]):
    """A registry's bridges, by (signal id, sender id), counting the event
    types they relay: a bridge to another process asks on every publish
    whether a type is one (see :meth:`Registry._is_relayed`)."""

    def __init__(self) -> None:
        super().__init__()
        self.relayed: Counter[TypeKey] = Counter()
        # Its own lock: bridges also go from finalizers, on any thread.
        self._lock = threading.Lock()

    def add(self, key: tuple[int, Any], signal: Signal, relay: Relay) -> None:
        with self._lock:
            self[key] = (signal, relay)
            self.relayed[type_key(relay.event_type)] += 1

    def discard(self, key: tuple[int, Any]) -> tuple[Signal, Relay] | None:
        with self._lock:
            found = self.pop(key, None)
            if found is not None:
                relayed = type_key(found[1].event_type)
                self.relayed[relayed] -= 1
                if not self.relayed[relayed]:
                    del self.relayed[relayed]
            return found


def drop_bridge(bridges: Bridges, key: tuple[int, Any]) -> None:
    found = bridges.discard(key)
    if found is not None:
        found[0].disconnect(found[1])


def drop_all_bridges(bridges: Bridges) -> None:
    for key in list(bridges):
        drop_bridge(bridges, key)


class Relay:
    """The receiver :meth:`EventBus.bridge` connects to a foreign signal.

    It holds its bus weakly: signals are often module globals (Flask's are),
    and a strong reference from one would keep the bus -- and through its
    history, the events' sources, such as a Flask app -- alive for good.
    Once the bus is gone the relay does nothing.
    """

    __slots__ = ("bus_ref", "event_type")

    def __init__(self, bus: Registry, event_type: EventTypeLike) -> None:
        # A Registry is only ever the base of an EventBus, which publishes.
        self.bus_ref: weakref.ref[EventBus] = weakref.ref(cast("EventBus", bus))
        self.event_type = event_type

    def __call__(self, sender: Any, /, **kwargs: Any) -> None:
        bus = self.bus_ref()
        if bus is None:
            return
        try:
            bus.publish_sync(Event(self.event_type, kwargs, sender))
        except Exception:  # the sender's call must not fail because of us
            logger.exception("bridge: relaying a send of %s failed", shown_name(self.event_type))

    def __repr__(self) -> str:
        bus = self.bus_ref()
        name = "a collected bus" if bus is None else repr(bus.name)
        return f"<bridge to {name} as {shown_name(self.event_type)}>"
