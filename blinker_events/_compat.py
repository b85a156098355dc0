"""Drop-in replacements for blinker's ``Signal``, ``NamedSignal`` and
``Namespace``: change ``import blinker`` to ``import blinker_events as
blinker`` and existing code keeps working.

The classes subclass blinker's, so ``isinstance(s, blinker.Signal)`` holds
(Flask checks it). Unguarded -- the default -- they *are* blinker's: nothing
is overridden on that path but a check of one attribute. ``guard(bus)``
sends them through an :class:`~blinker_events.EventBus` instead: each
``send`` becomes an :class:`~blinker_events.Event` of the signal (data: the
keyword arguments, source: the sender) that the bus delivers with every
guard -- isolation, timeouts, the cycle guard, auto-disable, history --
calling each receiver the blinker way, ``fn(sender, **kwargs)``, whether it
is sync or async, from ``send`` and ``send_async`` alike.
"""

from __future__ import annotations

import collections.abc as c
import typing as t

import blinker
from blinker import ANY

from ._events import Event

if t.TYPE_CHECKING:
    from ._report import DeliveryReport
    from ._signals import GuardingBus

__all__ = ["ANY", "NamedSignal", "Namespace", "Signal", "check_drop_in", "default_namespace", "signal"]


class Signal(blinker.Signal):
    """``blinker.Signal``, with opt-in guards.

    Guarded (see :meth:`guard`), ``send`` and ``send_async``:

    - run every receiver, sync and async mixed, from either method, without
      ``_async_wrapper`` / ``_sync_wrapper`` (they are accepted and unused);
    - return ``(receiver, result)`` for every receiver that ran, in
      subscription order, where ``result`` is the exception for one that
      raised and an :class:`~blinker_events.EventTimeoutError` for one that
      overran -- Django's ``send_robust`` convention. Skipped receivers (auto-
      disabled, stopped by the cycle guard) are left out; the bus's report
      in ``get_delivery_reports()`` says why;
    - raise only when the bus propagates exceptions, after every receiver ran.
    """

    #: Read by the bus: call receivers ``fn(sender, **kwargs)`` and collect
    #: their results.
    blinker_style = True
    #: The guarding bus; None (the class default) keeps blinker's behaviour.
    guarded_by: GuardingBus | None = None
    #: The bus's cached route for this signal, dropped on every change.
    route: t.Any = None

    def guard(self, bus: GuardingBus | None = None) -> t.Self:
        """Send through ``bus`` (the default bus if None) from now on.

        :param bus: an :class:`~blinker_events.EventBus`, or None for the default bus.
        :returns: the signal itself, so ``signal(...).guard(bus)`` chains.
        :raises TypeError: ``bus`` is not an EventBus.
        """
        if bus is None:
            from . import default_bus

            bus = default_bus
        elif not (callable(getattr(bus, "guard", None)) and callable(getattr(bus, "unguard", None))):
            raise TypeError(f"bus must be an EventBus or None, not {type(bus).__name__}")
        bus.guard(self)
        return self

    def unguard(self) -> None:
        """Back to blinker's own sending."""
        bus = self.guarded_by
        if bus is not None:
            bus.unguard(self)

    def connect(self, receiver: t.Any, sender: t.Any = ANY, weak: bool = True) -> t.Any:
        """Connect ``receiver`` as blinker does (``sender``: only its sends;
        ``weak``: hold it weakly) and return it, so this is a decorator too."""
        result = super().connect(receiver, sender, weak)
        bus = self.guarded_by
        if bus is not None:
            # As EventSignal does: receiver_connected's receivers ran without
            # the bus lock; the cached route is dropped after the change.
            with bus._lock:
                self.route = None
        return result

    def _disconnect(self, receiver_id: c.Hashable, sender_id: c.Hashable) -> None:
        bus = self.guarded_by
        if bus is None:
            super()._disconnect(receiver_id, sender_id)
            return
        with bus._lock:
            super()._disconnect(receiver_id, sender_id)
            self.route = None
            if receiver_id not in self.receivers:
                bus._forget_receiver(self, receiver_id)

    def send(
        self,
        sender: t.Any | None = None,
        /,
        *,
        _async_wrapper: t.Any = None,
        **kwargs: t.Any,
    ) -> list[tuple[c.Callable[..., t.Any], t.Any]]:
        """Call every receiver with ``sender`` and ``kwargs``; return the list
        of ``(receiver, result)``. Unguarded, exactly blinker's ``send``;
        guarded, a ``publish_sync`` of the bus (see the class docstring)."""
        bus = self.guarded_by
        if bus is None:
            return super().send(sender, _async_wrapper=_async_wrapper, **kwargs)
        if self.is_muted:
            return []
        return _results(bus.publish_sync(Event(self, kwargs, sender)))

    async def send_async(
        self,
        sender: t.Any | None = None,
        /,
        *,
        _sync_wrapper: t.Any = None,
        **kwargs: t.Any,
    ) -> list[tuple[c.Callable[..., t.Any], t.Any]]:
        """As :meth:`send`, awaited: unguarded, blinker's ``send_async``;
        guarded, an ``await publish`` of the bus."""
        bus = self.guarded_by
        if bus is None:
            return await super().send_async(sender, _sync_wrapper=_sync_wrapper, **kwargs)
        if self.is_muted:
            return []
        return _results(await bus.publish(Event(self, kwargs, sender)))


def _results(report: DeliveryReport) -> list[tuple[c.Callable[..., t.Any], t.Any]]:
    # The sender gets the return values; the report (which the history
    # keeps) lets go of them, or a bound method returning its own object
    # would keep that component alive, subscribed, up to history_size sends.
    results, report.results = report.results, None
    out = []
    # publish_sync runs async receivers after the sync ones; blinker's order
    # is the order of connection.
    for sub, value in sorted(results or (), key=lambda pair: pair[0].seq):
        receiver = sub.callback
        if receiver is not None:
            out.append((receiver, value))
    return out


class NamedSignal(Signal, blinker.NamedSignal):
    """``blinker.NamedSignal``, with the opt-in guards of :class:`Signal`."""


class Namespace(blinker.Namespace):
    """``blinker.Namespace`` whose signals are this module's :class:`NamedSignal`."""

    def signal(self, name: str, doc: str | None = None) -> NamedSignal:
        """The :class:`NamedSignal` called ``name``, made on first use."""
        if name not in self:
            self[name] = NamedSignal(name, doc)
        return t.cast(NamedSignal, self[name])


default_namespace: Namespace = Namespace()
signal = default_namespace.signal


def check_drop_in(signal: object) -> None:
    """What the bus can guard: a drop-in :class:`Signal` (TypeError otherwise)."""
    if not isinstance(signal, Signal):
        raise TypeError("signal must be a blinker_events.Signal to be guarded; bridge() a plain blinker signal instead")
