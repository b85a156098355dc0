"""The instrumentation hook: how a tracer (OpenTelemetry, Sentry, ...) wraps
publishes and receivers without the core knowing which one it is.

A bus holds at most one :class:`Hooks` object, in one slot of its runtime
(``runtime.hooks``; set with :func:`blinker_events.lowlevel.instrument`).
Every path reads the slot once per publish or delivery, and while it is
None nothing else happens: an uninstrumented bus pays one attribute read
and one comparison per publish (and per receiver), nothing more.

With hooks set, the three publishes go through :mod:`._instrument`'s twins
of the facade's methods, which differ from them only in calling
:meth:`Hooks.publish` first (in the publisher's thread or task, before the
outlets see the event, so that a bridge can carry what it made current)
and the ``end`` it returned last, once, however the publish ends. What a
hook makes current there (a context variable: a span) reaches every
receiver, wherever it runs: the paths already copy the publisher's context
to the pool threads, the worker, the bus loop and the tasks they start.

Around each receiver the paths call :meth:`Hooks.receiver`, which returns
what to call instead of the receiver: a wrapper that runs in the receiver's
own thread or task, so that what it makes current is current while the
receiver runs, and in what the receiver publishes. Receivers the bus does
not run -- disabled, stopped by the cycle guard -- are told to
:meth:`Hooks.skipped`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ._events import Event
from ._report import DeliveryReport
from ._subscription import Subscription

__all__ = ["Hooks", "PublishEnd"]

#: What :meth:`Hooks.publish` returns: called once when the publish ends
#: here, with its report (None if it never made one: the outlets refused
#: the event) and what it raised (None if nothing).
PublishEnd = Callable[[DeliveryReport | None, BaseException | None], None]


class Hooks(Protocol):
    """What :func:`blinker_events.lowlevel.instrument` installs on a bus.

    Every method runs on the bus's dispatch path: it must be quick, and
    what it raises reaches the publisher (or the receiver's outcome), so an
    implementation catches its own errors."""

    def publish(self, event: Event, queued: bool) -> PublishEnd:
        """A publish of ``event`` is about to begin, in the publisher's
        thread or task (its arguments already checked); ``queued``: it is a
        ``publish_nowait``, which ends here once the event is queued and
        delivers later, on the worker. Whatever this makes current in the
        context is current for the outlets and for every receiver of the
        event, wherever it runs; the returned callable must undo it."""
        ...

    def receiver(
        self, event: Event, sub: Subscription, fn: Callable[..., Any], timeout: float | None
    ) -> Callable[..., Any]:
        """What to call instead of ``fn``, ``sub``'s receiver, for ``event``,
        with the same arguments; ``timeout`` is the one it runs under. For
        an async receiver (``sub.is_async``) the result must return an
        awaitable, which runs in the receiver's own task."""
        ...

    def skipped(self, event: Event, sub: Subscription, reason: str) -> None:
        """``sub`` was not run for ``event``: ``reason`` is ``"disabled"``
        or ``"cycle"``."""
        ...

    def inject(self, carrier: dict[str, str]) -> None:
        """Write what identifies the current context into ``carrier``, for a
        bridge to carry to another process with the event."""
        ...

    def received(
        self, event: Event, carrier: Mapping[str, str], *, link: bool, attributes: Mapping[str, str]
    ) -> AbstractContextManager[object]:
        """What a bridge enters around publishing ``event``, which arrived
        from another process with ``carrier`` (what :meth:`inject` wrote
        there; may be empty or malformed: it is data from another machine).
        ``link``: the event was one of a work queue's, taken by this
        process alone, perhaps again after another consumer failed.
        ``attributes`` describe where it came from (the stream, the group)."""
        ...
