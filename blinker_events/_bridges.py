"""Bridges: relays that publish the sends of signals a bus does not own --
blinker signals (``bus.bridge(signal)``, :class:`Relay`) and Django's
(:class:`DefaultBusRelay`, for ``settings.BLINKER_EVENTS["SIGNALS"]``) --
and the bookkeeping of a bus's bridges."""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections import Counter
from typing import Any, Protocol

from blinker import ANY, Signal

from ._events import Event, EventTypeLike
from ._interop import make_id
from ._types import CLASS_KINDS, TypeKey, shown_name, type_key

__all__ = ["Bridges", "DefaultBusRelay", "Publisher", "Relay", "drop_all_bridges", "drop_bridge"]

logger = logging.getLogger("blinker_events")


class Publisher(Protocol):
    """Where a relay publishes: a bus."""

    name: str

    def publish_sync(self, event: Event) -> Any: ...


class Bridges(dict[tuple[int, Any], tuple[Signal, "Relay"]]):
    """A registry's bridges, by (signal id, sender id), counting the event
    types they relay: a bridge to another process asks on every publish
    whether a type is one (see :meth:`Registry.is_relayed`)."""

    def __init__(self) -> None:
        super().__init__()
        self.relayed: Counter[TypeKey] = Counter()
        # Its own lock: bridges also go from finalizers, on any thread.
        self._lock = threading.Lock()

    def locks(self) -> tuple[threading.Lock]:
        """The locks a forked child must re-make."""
        return (self._lock,)

    # The docstrings of bridge and unbridge are EventBus's too (see _bus).
    def bridge(self, bus: Publisher, signal: Signal, event_type: EventTypeLike | None, sender: Any) -> EventTypeLike:
        """Relay every send of a blinker signal you do not own to this bus.

        Each ``signal.send(sender, **kwargs)`` becomes
        ``Event(event_type, kwargs, sender)`` published with every guard;
        ``event_type`` defaults to the signal's name. With ``sender``, only
        that sender's sends are relayed (blinker's ``connect(sender=)``), and
        the same signal can be bridged once per sender. The relay never raises
        into the sender's call (failures are logged and in the history), and
        holds nothing of the sender. It is a sync receiver: a ``send_async``
        of the signal must pass ``_sync_wrapper`` as blinker requires for any
        sync receiver. Returns the event type to subscribe to.

        :param signal: any blinker ``Signal``.
        :param event_type: the event type to publish; None: the signal's name.
        :param sender: relay only this sender's sends; ``ANY``: every send.
        :returns: the event type.
        :raises TypeError: ``signal`` is not a blinker ``Signal``, or a bad ``event_type``.
        """
        if not isinstance(signal, Signal):
            raise TypeError(f"signal must be a blinker Signal, not {type(signal).__name__}")
        if event_type is None:
            name = getattr(signal, "name", None)
            if not isinstance(name, str):
                raise ValueError("event_type: an unnamed signal needs one to be bridged")
            event_type = name
        else:
            type_key(event_type)
            if type(event_type) in CLASS_KINDS:
                # A relay publishes Event(event_type, kwargs, sender), which a class refuses at every send.
                raise TypeError("event_type: a TypedEvent class cannot be relayed to; subscribe to the signal instead")
        key = (id(signal), make_id(sender))
        relay = Relay(bus, event_type)
        with self._lock:
            if key in self:
                raise ValueError(f"signal {signal!r} is already bridged to this bus")
            self[key] = (signal, relay)
            self.relayed[type_key(event_type)] += 1
        signal.connect(relay, sender=sender, weak=False)
        if sender is not ANY:
            # When the sender goes, so does its bridge: its id may be reused
            # by a new sender, and the relay must not stay on the signal.
            # (A sender that cannot be weakly referenced lives as long as the bridge.)
            with contextlib.suppress(TypeError):
                weakref.finalize(sender, drop_bridge, self, key)
        return event_type

    def unbridge(self, signal: Signal, sender: Any) -> bool:
        """Remove the relay :meth:`bridge` connected; False if there was none.

        :param signal: the bridged signal.
        :param sender: the ``sender`` it was bridged with.
        :returns: whether a relay was removed.
        :raises TypeError: ``signal`` is not a blinker ``Signal``.
        """
        if not isinstance(signal, Signal):
            raise TypeError(f"signal must be a blinker Signal, not {type(signal).__name__}")
        found = self.discard((id(signal), make_id(sender)))
        if found is None:
            return False
        found[0].disconnect(found[1])
        return True

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

    def __init__(self, bus: Publisher, event_type: EventTypeLike) -> None:
        self.bus_ref: weakref.ref[Publisher] = weakref.ref(bus)
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


class DefaultBusRelay:
    """The receiver connected to a bridged Django signal: each send becomes
    an event on whatever :data:`blinker_events.default_bus` is at the time,
    with the send's keyword arguments (but ``signal``) as data and its
    sender as source. Like every bridge's relay, it never raises into the send."""

    __slots__ = ("event_type",)

    def __init__(self, event_type: EventTypeLike) -> None:
        self.event_type = event_type

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        import blinker_events  # the default bus of now, not of import time

        kwargs.pop("signal", None)
        try:
            blinker_events.default_bus.publish_sync(Event(self.event_type, kwargs, sender))
        except Exception:  # Django's send must not fail because of a receiver
            logger.exception("django bridge: relaying a send of %s failed", shown_name(self.event_type))

    def __repr__(self) -> str:
        return f"<django bridge to the default bus as {shown_name(self.event_type)}>"
