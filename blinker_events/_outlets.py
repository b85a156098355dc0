"""Outlets: where a bus hands its events to another transport.

A bridge to another process (``blinker_events.redis``) must see every local
event of its types at the moment it is published -- to refuse one it cannot
carry, with the error raised to the publisher, and to write the ones it can --
without being a receiver: a receiver's failure is isolated and counts toward
auto-disabling it, and it would show up among the subscriptions. So the bus
offers each event to its outlets first, in the publisher's thread, before any
receiver runs. Events that arrived through a bridge (``event.origin`` set) are
never offered, which is what keeps bridges from echoing.

The core never imports an outlet; an outlet only implements :class:`Outlet`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._events import Event

__all__ = ["Outlet", "offer"]


class Outlet(Protocol):
    """What :meth:`~blinker_events.EventBus.add_outlet` accepts: an object
    with a bool :attr:`takes_over` attribute and the three methods below
    (``add_outlet`` refuses one without them with ``TypeError``)."""

    #: True if the events this outlet takes are delivered elsewhere instead
    #: of here (a work queue shared by several processes); the publish then
    #: runs no local receiver and its report says ``handed_off``.
    takes_over: bool

    def prepare(self, event: Event) -> object | None:
        """Return what :meth:`send` needs for ``event``, or None to pass it
        by. Raise ``TypeError``/``ValueError`` to refuse the publish; this
        must not change any state, so the publish can fail cleanly."""

    def send(self, prepared: object) -> None:
        """Take the event :meth:`prepare` accepted. Must not block for long
        or raise: the publish already stands."""

    def close(self, timeout: float | None) -> int | None:
        """The bus is shutting down: flush within ``timeout`` seconds.
        Return how many events it dropped (not carried: counted and logged
        by the outlet), which the bus's ``shutdown()`` adds to its own;
        None or 0 for none."""


def offer(outlets: tuple[Outlet, ...], event: Event) -> bool:
    """Offer ``event`` to every outlet; True if one took it over.

    All outlets prepare before any sends, so an event one of them refuses
    goes to none of them.
    """
    if len(outlets) == 1:  # the common case, without the list
        outlet = outlets[0]
        prepared = outlet.prepare(event)
        if prepared is None:
            return False
        outlet.send(prepared)
        return outlet.takes_over
    accepted = []
    for outlet in outlets:
        prepared = outlet.prepare(event)
        if prepared is not None:
            accepted.append((outlet, prepared))
    taken = False
    for outlet, prepared in accepted:
        outlet.send(prepared)
        taken = taken or outlet.takes_over
    return taken
