"""The context variable that carries the causal chain of an event, and the
bus's dispatch context entered around deliveries on its own threads.

The variable lives in its own module because both the event model (which reads it to
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

from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from typing import Any, TypeAlias

#: ``(event, chain)``. The event is typed loosely: the event model reads
#: this variable, so this module cannot import it.
Frame: TypeAlias = "tuple[Any, tuple[Any, ...]]"
Factory: TypeAlias = Callable[[], AbstractContextManager[Any]]

HANDLING: ContextVar[Frame | None] = ContextVar("blinker_events.handling", default=None)
# The variable's methods, bound once. On 3.11, ``HANDLING.get()`` on a
# ContextVar imported by name is compiled as an attribute load that makes a
# new bound-method object on every call (LOAD_METHOD does not specialise for
# it): ~690 instructions against ~170 for calling the bound method kept
# here, and the hot path does a get per publish and a set and a reset per
# receiver. The dispatch code should call these instead of
# ``HANDLING.get()`` / ``.set()`` / ``.reset()``; they are the same C
# methods of the same variable, so the semantics are identical.
#: ``HANDLING.get()``: the running receiver's frame, or None.
get_handling: Callable[[], Frame | None] = HANDLING.get
#: ``HANDLING.set(frame)``: returns the token for :data:`reset_handling`.
set_handling: Callable[[Frame | None], Token[Frame | None]] = HANDLING.set
#: ``HANDLING.reset(token)``.
reset_handling: Callable[[Token[Frame | None]], None] = HANDLING.reset


def current_chain() -> tuple[Any, ...]:
    """The subscriptions on the causal path to the running code, outermost first."""
    frame = get_handling()
    return () if frame is None else frame[1]


# -- the dispatch context (EventBus.set_dispatch_context) ----------------------
#
# It is the integration's code (Flask's app context, whose teardown functions
# are the application's), run on the bus's threads, where an exception
# escaping would end the delivery with nobody to tell: no ``done`` for the
# waiting publisher, a report lost. So making, entering and leaving it are
# done by hand rather than with ``with``, each failure handed back to the
# caller to report, and the delivery goes on or is skipped, never abandoned.


def enter_context(factory: Factory) -> tuple[AbstractContextManager[Any] | None, BaseException | None]:
    """Make and enter ``factory()``: ``(manager, None)``, or ``(None, what
    raised)`` -- anything, since on a bus thread nobody else could see it."""
    try:
        manager = factory()
        manager.__enter__()
    except BaseException as exc:
        return None, exc
    return manager, None


def leave_context(manager: AbstractContextManager[Any], error: BaseException | None = None) -> BaseException | None:
    """Leave ``manager`` (``error``: what the delivery inside raised, if
    anything, which the manager cannot suppress); return what leaving raised."""
    try:
        manager.__exit__(None if error is None else type(error), error, None if error is None else error.__traceback__)
    except BaseException as exc:
        return None if exc is error else exc
    return None
