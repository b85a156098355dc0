"""How an instrumented publish begins: the bus's :class:`~._hooks.Hooks`
told, once its arguments are known good.

A bus holds at most one :class:`Hooks` object, in one slot of its runtime
(``runtime.hooks``; set with :func:`blinker_events.lowlevel.instrument`).
Each of the facade's three publishes reads the slot once; while it is None
nothing else happens. Set, the publish calls :func:`start` first -- in the
publisher's thread or task, before the outlets see the event, so that a
bridge can carry what the hooks made current -- and the ``end`` it returns
last, once, however the publish ends (the same body of the facade serves
both). What a hook makes current there (a context variable: a span) reaches
every receiver, wherever it runs: the paths already copy the publisher's
context to the pool threads, the worker, the bus loop and the tasks they
start.

Around each receiver the paths call :meth:`Hooks.receiver`, which returns
what to call instead of the receiver (a wrapper that runs in the receiver's
own thread or task, so a span it makes current is current while the
receiver runs, and in what the receiver publishes). Receivers the bus does
not run -- disabled, stopped by the cycle guard -- are told to
:meth:`Hooks.skipped`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._checks import check_timeout
from ._events import Event
from ._hooks import PublishEnd
from ._report import DeliveryReport

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["start"]


def _untraced(report: DeliveryReport | None, error: BaseException | None) -> None:
    """The end of a publish whose hooks were taken off as it began."""


def start(runtime: Runtime, event: Event, timeout: float | None, *, queued: bool) -> PublishEnd:
    """Begin an instrumented publish: what to call when it ends.

    The arguments are checked first (``Runtime.begin`` checks them again),
    so that a refused publish leaves no trace. The slot is read again here:
    hooks taken off since the facade looked make this an untraced publish,
    not an error."""
    if not isinstance(event, Event):
        raise TypeError(f"event must be an Event, not {type(event).__name__}")
    if timeout is not None:
        check_timeout(timeout)
    hooks = runtime.hooks
    return _untraced if hooks is None else hooks.publish(event, queued)
