"""The low-level API, for integrations: what Flask, Django and the Redis
bridge need beyond the public bus -- and what a new integration should use
instead of the private modules, whose names and shapes may change.

Everything here is stable in the same sense as :mod:`blinker_events`:

- **argument checks** (:func:`check_timeout`, :func:`check_flag`,
  :func:`check_positive_int`) raise TypeError/ValueError naming the
  argument, as the bus's own do; :func:`describe` renders any object for a
  message, bounded and never raising;
- **settings**: :class:`BusSettings` (frozen, one field per setting),
  :data:`SETTING_NAMES`, :func:`check_setting` and :func:`default_of`, from
  which an integration derives its configuration table;
- **type keys**: :func:`type_key` of an event type, :func:`event_key` of an
  event -- what two equal event types share -- and :func:`type_matcher`,
  whether an event is of a type as the bus delivers it (a typed event
  class takes its subclasses' events);
- **outlets** (:class:`Outlet`): what a bridge to another process adds with
  ``bus.add_outlet``; :func:`outlets`, :func:`is_relayed`,
  :func:`forget_outlet_after_fork`;
- **the bus loop**: :func:`bus_loop`, the thread whose loop runs the bus's
  async receivers off the caller's thread -- start it, run a coroutine on it
  (``submit`` / ``submit_to``), ask whether this is it;
- **routes**: :func:`has_sync_receivers`;
- **process lifecycle**: :func:`drain_at_exit`, :func:`reinit_locks` (for a
  forked child), and :class:`DefaultBusRelay` (the relay of a bridged
  Django signal);
- **observing** (for test helpers): :func:`observe`, :func:`unobserve`,
  :func:`observers` -- a callable handed every publish's report as it is
  recorded, on every path, history on or off -- :func:`replace_history`
  and :func:`drain`;
- **instrumentation** (for tracers and metrics): :func:`instrument`,
  :func:`uninstrument`, :func:`instrumentation` -- one :class:`Hooks`
  object a bus calls around every publish and receiver (see
  :class:`Hooks`; :mod:`blinker_events.otel` is one);
- **causes**: :func:`published_by`, which receiver made an event;
- **messages**: :func:`shown_name`, an event type's name cut for a message;
- :func:`running_loop`: the loop running in this thread, or None, cheaply.

This module is part of the facade: it alone reaches into a bus on an
integration's behalf. Only the argument checks (and :func:`check_setting`,
:func:`default_of`, which refuse an unknown setting name with a
ValueError) check what they are given; the other functions take the
objects their docstrings name -- an :class:`~blinker_events.EventBus`, an
:class:`~blinker_events.Event` -- and are not guarded against anything else,
as the private calls they replace were not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from ._bridges import DefaultBusRelay
from ._bus import EventBus
from ._checks import MAX_COUNT, MAX_TIMEOUT, check_flag, check_positive_int, check_timeout
from ._describe import LIMIT as DESCRIBE_LIMIT
from ._describe import describe
from ._events import Event
from ._fork import reinit as reinit_locks
from ._history import Observer
from ._hooks import Hooks, PublishEnd
from ._interop import running_loop
from ._lifecycle import drain_at_exit
from ._outlets import Outlet
from ._report import DeliveryReport
from ._settings import SETTING_NAMES, BusSettings, check_setting, default_of
from ._types import TypeKey, shown_name, type_key, type_matcher

__all__ = [
    "DESCRIBE_LIMIT",
    "MAX_COUNT",
    "MAX_TIMEOUT",
    "SETTING_NAMES",
    "BusLoop",
    "BusSettings",
    "DefaultBusRelay",
    "Hooks",
    "Observer",
    "Outlet",
    "PublishEnd",
    "TypeKey",
    "bus_loop",
    "check_flag",
    "check_positive_int",
    "check_setting",
    "check_timeout",
    "default_of",
    "describe",
    "drain",
    "drain_at_exit",
    "event_key",
    "forget_outlet_after_fork",
    "has_sync_receivers",
    "instrument",
    "instrumentation",
    "is_relayed",
    "left_running",
    "observe",
    "observers",
    "outlets",
    "published_by",
    "reinit_locks",
    "replace_history",
    "running_loop",
    "shown_name",
    "type_key",
    "type_matcher",
    "uninstrument",
    "unobserve",
]


def event_key(event: Event) -> TypeKey:
    """The type key of ``event``'s type (``type_key(event.event_type)``,
    computed once when the event was made)."""
    return event._key


def published_by(event: Event) -> int | None:
    """The ``id`` of the :class:`~blinker_events.Subscription` whose
    receiver was running when ``event`` was made -- the receiver, among
    those of the event ``event.parent_id`` names, that caused it -- or None:
    a top-level event, or one rebuilt by ``Event.from_dict`` (an id means
    nothing in another process). Pairs with ``parent_id`` as the causal
    link :mod:`blinker_events.flow` draws."""
    return getattr(event, "_by", None)


T = TypeVar("T")


class BusLoop(Protocol):
    """A bus's loop thread, as :func:`bus_loop` gives it: one event loop in a
    daemon thread, started on first use, that runs the bus's async
    receivers reached from code without a loop of its own. It lives as long
    as the bus (``shutdown`` stops it), so loop-bound resources made there
    stay usable."""

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, starting its thread if it does not run."""
        ...

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the loop, as a task in a copy of the caller's
        context; the future resolves to what it returns. The bus's shutdown
        waits for what was submitted before it stops the loop."""
        ...

    def submit_to(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> Future[T] | None:
        """:meth:`submit`, but only while ``loop`` is still this thread's
        running loop; otherwise None, and ``coro`` is closed (for work bound
        to that loop, which a restarted one must not run)."""
        ...

    def in_loop_thread(self) -> bool:
        """Whether the calling thread is the loop's (where blocking on the
        loop's own work would deadlock)."""
        ...


def bus_loop(bus: EventBus) -> BusLoop:
    """The bus's loop thread (started on first use by ``loop()``)."""
    return bus._loop_thread


def outlets(bus: EventBus) -> tuple[Outlet, ...]:
    """The outlets ``bus`` offers every local event to, in the order added."""
    return bus._runtime.outlets


def left_running(bus: EventBus) -> int:
    """How many ``publish_nowait`` events ``bus``'s last ``shutdown()`` left
    still being delivered when its queue's time was up (0 before any): a
    slow or hung receiver's. Not dropped, nor in ``shutdown()``'s count --
    their receivers go on and their futures resolve if they end -- but cut
    off if the process then exits. The shutdown's warning names them."""
    return bus._queue.left_running


def forget_outlet_after_fork(bus: EventBus, outlet: Outlet) -> None:
    """Drop ``outlet`` from ``bus`` without taking any lock: for an
    at-fork hook in a child, where a lock a parent thread held at the fork
    may never be released. Anywhere else, use ``bus.remove_outlet``."""
    runtime = bus._runtime
    runtime.outlets = tuple(o for o in runtime.outlets if o is not outlet)


def is_relayed(bus: EventBus, key: TypeKey) -> bool:
    """Whether a blinker signal bridged to ``bus`` publishes events of the
    type filed under ``key`` (their data are the signal's keyword
    arguments: Python objects, which a bridge to another process cannot
    carry)."""
    return bus._registry.is_relayed(key)


def has_sync_receivers(bus: EventBus, event: Event) -> bool:
    """Whether publishing ``event`` on ``bus`` now would reach any sync
    receiver."""
    return bool(bus._registry.route(event).sync_subs)


def observe(bus: EventBus, observer: Observer) -> None:
    """Call ``observer(report)`` with the report of every publish on ``bus``
    from now on, once its receivers are done (a ``publish_nowait``'s on the
    worker, when it finished), in the thread that ended the publish, on
    every path, history on or off. What it raises is logged, never the
    publisher's. It is not a subscription: nothing lists it. An observer
    with a ``close()`` method (a waiter's, a stream's) is closed by whoever
    else takes it away -- an isolation ending -- so that its consumers do
    not wait for good."""
    bus._history.observe(observer)


def unobserve(bus: EventBus, observer: Observer) -> bool:
    """Stop calling ``observer``; False if it was not observing."""
    return bus._history.unobserve(observer)


def observers(bus: EventBus) -> tuple[Observer, ...]:
    """The observers of ``bus`` now (its waiters' and streams' too)."""
    return bus._history.observers


def replace_history(bus: EventBus, reports: list[DeliveryReport]) -> None:
    """Make ``reports`` the history of ``bus`` (the newest that fit)."""
    bus._history.replace(reports)


def drain(bus: EventBus, timeout: float | None) -> int:
    """Wait up to ``timeout`` seconds until the worker queue of ``bus``
    delivered everything queued, then drop what is left (counted, logged,
    futures failed) and return how many: ``shutdown``'s first stage,
    leaving the outlets and the bus loop running."""
    return bus._queue.join(check_timeout(timeout))


def instrument(bus: EventBus, hooks: Hooks) -> None:
    """Call ``hooks`` around every publish and receiver of ``bus`` from now
    on, on every path (see :class:`Hooks` for when each method is called,
    and in which thread). A bus has one slot: while another object is
    installed this raises ValueError and changes nothing (installing the
    same one again does nothing). Publishes already under way keep the
    hooks they started with, or none. Without hooks a bus pays nothing
    for this beyond reading the empty slot."""
    for name in ("publish", "receiver", "skipped", "inject", "received"):
        if not callable(getattr(hooks, name, None)):
            raise TypeError(f"hooks must have a {name}() method")
    runtime = bus._runtime
    with runtime.lock:
        if runtime.hooks is not None and runtime.hooks is not hooks:
            raise ValueError(f"hooks: {bus!r} is already instrumented by {describe(runtime.hooks)}")
        runtime.hooks = hooks


def uninstrument(bus: EventBus, hooks: Hooks) -> bool:
    """Take ``hooks`` off ``bus``; False (and nothing changes) if they were
    not the ones installed. Receivers already wrapped finish wrapped."""
    runtime = bus._runtime
    with runtime.lock:
        if runtime.hooks is not hooks:
            return False
        runtime.hooks = None
        return True


def instrumentation(bus: EventBus) -> Hooks | None:
    """The hooks installed on ``bus``, or None. A bridge asks this per
    event, to carry the trace context only when there is one to carry."""
    return bus._runtime.hooks
