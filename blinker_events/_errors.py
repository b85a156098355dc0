"""The exceptions the bus raises or reports.

Everything derives from :class:`EventSystemError`, so ``except
EventSystemError`` catches the bus's own conditions without swallowing the
exceptions that receivers raise (those are reported as they are).
"""

from __future__ import annotations

__all__ = [
    "CircularEventError",
    "DispatchContextError",
    "EventSystemError",
    "EventTimeoutError",
    "QueueFullError",
]


class EventSystemError(Exception):
    """Base class of every error raised by the event bus itself."""


class CircularEventError(EventSystemError):
    """A delivery was skipped by the cycle guard.

    Raised (under propagation) or reported when a subscription would be
    re-entered by an event that its own handling caused, or when nesting
    went deeper than the bus's ``max_depth``.
    """


class EventTimeoutError(EventSystemError, TimeoutError):
    """A receiver did not finish within its timeout.

    Async receivers are cancelled at the deadline. A sync receiver cannot be
    stopped by Python, so for those this error records that it overran: the
    publisher stopped waiting, or (inline) the overrun was counted as a
    failure after the receiver returned.
    """


class QueueFullError(EventSystemError):
    """The worker queue had no room for an event, or the event was dropped
    from it (``overflow="drop_oldest"``, or still queued at shutdown)."""


class DispatchContextError(EventSystemError):
    """The bus's dispatch context (``set_dispatch_context``) raised while it
    was made, entered or left around a delivery; ``__cause__`` is what it
    raised. Reported (and raised under propagation) like a receiver's
    failure, but counted against no receiver."""
