"""Context variables that carry the causal chain of an event.

They live in their own module because both the event model (which reads the
current event to fill in ``parent_id``) and the dispatch paths (which set
them) need them, and neither should import the other for it.

``CURRENT_EVENT`` holds the event whose receivers are running; it is set once
per dispatch. ``CURRENT_CHAIN`` holds the tuple of subscriptions whose
handling caused the code that is running now, innermost last; it is set
around each receiver call. Being context variables, both follow the code into
``asyncio`` tasks, ``contextvars.copy_context().run`` (the worker queue) and
asgiref's thread hops, so the cycle guard sees A -> B -> A across all of them.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._events import Event

CURRENT_EVENT: ContextVar[Event | None] = ContextVar("blinker_events.current_event", default=None)
CURRENT_CHAIN: ContextVar[tuple[Any, ...]] = ContextVar("blinker_events.current_chain", default=())
