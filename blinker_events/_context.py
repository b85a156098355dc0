"""The context variable that carries the causal chain of an event.

It lives in its own module because both the event model (which reads it to
fill in ``parent_id``) and the dispatch paths (which set it) need it, and
neither should import the other for that.

``HANDLING`` is set around each receiver call to ``(event, chain)``: the
event the receiver is handling, and the tuple of subscriptions whose handling
led to this call, outermost first, the running receiver last. One variable
set once per receiver is the cheapest form of this on the hot path (a
context variable set-and-reset costs about as much as a trivial receiver
call). Being a context variable it follows the code into ``asyncio`` tasks,
``contextvars.copy_context().run`` (the worker queue) and asgiref's thread
hops, so the cycle guard sees A -> B -> A across all of them.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from ._events import Event

Frame: TypeAlias = "tuple[Event, tuple[Any, ...]]"

HANDLING: ContextVar[Frame | None] = ContextVar("blinker_events.handling", default=None)


def current_chain() -> tuple[Any, ...]:
    """The subscriptions on the causal path to the running code, outermost first."""
    frame = HANDLING.get()
    return () if frame is None else frame[1]
