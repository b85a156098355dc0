"""Subscriptions: one receiver attached to one event type (or to all).

A :class:`Subscription` is what the bus connects to an event type's blinker
signal, so blinker's receiver list stays the single record of who listens.
It carries everything the guards need per receiver -- its timeout, whether
it may be re-entered, its consecutive-failure count -- so none of that is
stored on the user's callable (a bound method takes no attributes, and one
function subscribed by two components must keep two owner tags).

Nothing of a component is held strongly just because it subscribed: a bound
method is held weakly, and so are the ``source`` tag and the ``sender`` (as
blinker holds senders), whenever they can be weakly referenced. When any of
them is collected, the subscription ends itself.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
import weakref
from collections.abc import Callable, Hashable
from types import BuiltinMethodType, MethodType
from typing import Any, Protocol

from asgiref.sync import iscoroutinefunction as _marked_coroutine_function
from blinker import ANY

from ._describe import LIMIT, pass_interrupt
from ._events import Event, EventTypeLike
from ._interop import ANY_ID, make_id, make_ref
from ._typed import is_event_class
from ._types import TypeKey, event_type_name, shown_name, type_key

__all__ = ["Owner", "Subscription"]


class Owner(Protocol):
    """What a subscription asks of the registry that made it."""

    lock: threading.RLock

    def note_dead(self, sub: Subscription) -> None: ...

    def remove_subscriptions(self, subs: list[Subscription], *, announce: bool = True) -> int: ...


_ids = itertools.count(1)
#: The spacing of places in the delivery order (``seq``): a plain receiver
#: the bus first meets on a blinker ``Signal`` it does not own takes a
#: place in the gap after the receiver connected before it, which keeps the
#: signal's connection order (see ``_signals.build_route``).
SEQ_GAP = 1 << 20
_BOUND = (MethodType, BuiltinMethodType)


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns an awaitable to run on a loop.

    Sees through ``functools.partial`` and recognises objects whose class
    defines ``async def __call__`` as well as callables marked with
    ``inspect.markcoroutinefunction`` / asgiref's marker.
    """
    try:
        while isinstance(fn, functools.partial):
            fn = fn.func
        if inspect.iscoroutinefunction(fn) or _marked_coroutine_function(fn):
            return True
        if inspect.isfunction(fn) or inspect.ismethod(fn) or inspect.isbuiltin(fn) or isinstance(fn, type):
            return False
    except BaseException as exc:
        # Its attributes cannot be read (a werkzeug LocalProxy outside its
        # context raises on any): what its class's __call__ is, decides.
        pass_interrupt(exc)
    if not callable(fn):
        return False
    call = type(fn).__call__
    return inspect.iscoroutinefunction(call) or _marked_coroutine_function(call)


def callback_name(fn: object) -> str:
    """The receiver's name in messages, at most :data:`~._describe.LIMIT`
    characters: its ``__qualname__`` and ``__module__`` are the
    application's, of any length. Never raises: reading them may (a
    werkzeug ``LocalProxy`` outside its context raises on any attribute),
    and a receiver must subscribe all the same, named by its type."""
    try:
        while isinstance(fn, functools.partial):
            fn = fn.func
        name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        module = getattr(fn, "__module__", None)
        text = f"{module}.{name}" if module else str(name)
        if not isinstance(text, str):  # a str subclass's __format__ may return anything
            raise TypeError("not a str")
    except BaseException as exc:
        pass_interrupt(exc)
        kind = type(fn)
        text = f"{kind.__module__}.{kind.__qualname__}"
    return text if len(text) <= LIMIT else text[: LIMIT - 3] + "..."


def same_callback(a: object, b: object) -> bool:
    """Bound methods (``obj.method``, and built-in ones like ``items.append``)
    are made afresh on every attribute access; two of them are the same
    callback when they compare equal, i.e. bind the same function to the
    same object."""
    if a is b:
        return True
    return isinstance(a, _BOUND) and isinstance(b, _BOUND) and a == b


def callback_key(fn: object) -> Hashable:
    """A key that callbacks :func:`same_callback` calls the same share, so
    the bus can find a callback's subscriptions without looking at any
    other (two callbacks with one key may still differ: compare them)."""
    if isinstance(fn, MethodType):
        return id(fn.__func__), id(fn.__self__)
    if isinstance(fn, BuiltinMethodType):
        return "builtin", id(fn.__self__), fn.__name__
    return id(fn)


class _Strong:
    """Holds a tag that cannot be weakly referenced (a string, a number,
    None), with the same call as a weak reference."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __call__(self) -> Any:
        return self.obj


class Subscription:
    """A receiver's attachment to the bus, returned by ``subscribe``.

    Attributes a caller may read: ``id``, ``event_type`` (None for a
    subscription to every event type), ``source`` (the owner tag given to
    ``subscribe``, used by ``unsubscribe_by_source``; it does not filter
    events), ``sender`` (only events whose ``source`` is this object reach
    the receiver; ``blinker.ANY`` by default), ``timeout``, ``reentrant``,
    ``is_async``, ``failures`` (consecutive), ``last_error`` (the last
    failure's description, as a SUBSCRIBER_DISABLED event's ``error``; the
    exception itself is in that publish's report), ``disabled`` and ``active``
    (False once unsubscribed or once a weakly held callback, ``source`` or
    ``sender`` was collected). ``source`` and ``sender`` are held weakly
    when they can be (blinker holds senders so too), strongly otherwise.

    A disabled subscription stays attached and is reported as skipped; call
    :meth:`enable` to let it receive events again.
    """

    __slots__ = (
        "__weakref__",
        "_bus",
        "_chain",
        "_fn",
        "_ref",
        "_sender",
        "_source",
        "active",
        "callback_key",
        "disabled",
        "event_type",
        "failures",
        "id",
        "is_async",
        "kwargs",
        "last_error",
        "name",
        "plain",
        "reentrant",
        "sender_id",
        "seq",
        "timeout",
        "type_key",
    )

    _fn: Callable[..., Any] | None
    _ref: Callable[[], Callable[..., Any] | None] | None

    def __init__(
        self,
        bus: Owner,
        event_type: EventTypeLike | None,
        callback: Callable[..., Any],
        *,
        source: Any = None,
        sender: Any = ANY,
        timeout: float | None = None,
        reentrant: bool = False,
        weak: bool | None = None,
        plain: bool = False,
        kwargs: bool = False,
    ) -> None:
        self._bus = bus
        self.id = next(_ids)
        # ``seq`` orders deliveries: the order of attachment across the bus.
        self.seq = self.id * SEQ_GAP
        self.event_type = event_type
        self.type_key: TypeKey | None = None if event_type is None else type_key(event_type)
        self.callback_key = callback_key(callback)
        self.sender_id: Hashable = ANY_ID if sender is ANY else make_id(sender)
        self.timeout = timeout
        self.reentrant = reentrant
        self.is_async = is_async_callable(callback)
        self.name = callback_name(callback)
        #: True for receivers connected to the signal with plain blinker
        #: ``connect``: they are called ``fn(event.source, event=event)``,
        #: or, with ``kwargs`` (receivers of a guarded drop-in Signal), the
        #: blinker way: ``fn(event.source, **event.data)``.
        self.plain = plain
        self.kwargs = kwargs
        self.failures = 0
        self.last_error: str | None = None
        self.disabled = False
        self.active = True
        # The chain the cycle guard sets while this receiver runs at top
        # level, built once here rather than on every call.
        self._chain = (self,)
        collected = self._on_collected()
        self._source = _hold(source, collected)
        self._sender = _hold(sender, collected)
        if weak is None:
            weak = isinstance(callback, MethodType)
        if weak:
            self._fn = None
            self._ref = make_ref(callback, collected)
        else:
            self._fn = callback
            self._ref = None

    def _on_collected(self) -> Callable[[object], None]:
        """The weak-reference callback for what this subscription holds
        weakly: when any of it is collected, the subscription ends.

        It runs inside the garbage collector, possibly in a thread that holds
        the bus lock, so it only marks the subscription dead; the bus sweeps
        dead ones out on its next change or route rebuild (as Django's
        dispatcher does with ``_dead_receivers``)."""
        bus_ref = weakref.ref(self._bus)
        self_ref = weakref.ref(self)

        def collected(_: object) -> None:
            sub, bus = self_ref(), bus_ref()
            if sub is not None:
                sub.active = False
                if bus is not None:
                    bus.note_dead(sub)

        return collected

    @property
    def source(self) -> Any:
        """The owner tag given to ``subscribe`` (None once it was collected)."""
        return self._source()

    @property
    def sender(self) -> Any:
        """Only events whose ``source`` is this object are delivered
        (``blinker.ANY``: any; None once it was collected)."""
        return self._sender()

    @staticmethod
    def _next_seq() -> int:
        """A place in the delivery order, for receivers attached by blinker's
        own ``connect`` (they share the counter with subscriptions)."""
        return next(_ids) * SEQ_GAP

    @property
    def callback(self) -> Callable[..., Any] | None:
        """The receiver, or None once a weakly held one was collected."""
        if self._fn is not None:
            return self._fn
        assert self._ref is not None
        return self._ref()

    def _invoke_plain(self, fn: Callable[..., Any], event: Event) -> Any:
        """Call a receiver of a plain blinker ``connect`` its way."""
        if self.kwargs:
            return fn(event._source, **event._data)
        return fn(event._source, event=event)

    def enable(self) -> None:
        """Re-enable an auto-disabled subscription and reset its failure count."""
        with self._bus.lock:
            self.failures = 0
            self.disabled = False

    def unsubscribe(self) -> bool:
        """Detach from the bus. Returns False if it was already detached.

        :returns: True if this call detached it.
        """
        return self._bus.remove_subscriptions([self]) == 1

    def __call__(self, sender: Any, /, **kwargs: Any) -> Any:
        # Blinker calls receivers this way when a signal is sent with its
        # own, unguarded ``send`` (blinker's rules: no guard, the first error
        # stops the send). The bus's own signal of a type is sent so with the
        # event as ``event=``. Any other send -- of a blinker Signal of the
        # application's used as an event type, or of the bus's own signal
        # without an event -- makes the event as a guarded send would (data:
        # the keyword arguments, source: the sender), and the receiver runs,
        # as any receiver of a blinker send does.
        fn = self.callback
        if fn is None:
            return None
        event = kwargs.get("event")
        if isinstance(event, Event):  # the bus's own signal, sent with its event
            return fn(event)
        if self.is_async:  # as blinker's send refuses an async receiver
            raise RuntimeError(f"{self.name} is async: guard the signal, or publish, to run it")
        event_type = self.event_type
        assert event_type is not None  # a subscription to every type is no signal's receiver
        if is_event_class(event_type):
            raise TypeError(
                f"{self.name} takes {event_type_name(event_type)} events: send one as event=..., or publish it"
            )
        return fn(Event(event_type, kwargs, sender))

    def __repr__(self) -> str:
        target = "*" if self.event_type is None else shown_name(self.event_type)
        state = " disabled" if self.disabled else "" if self.active else " inactive"
        return f"<Subscription #{self.id} {self.name} -> {target}{state}>"


def _hold(obj: Any, collected: Callable[[object], None]) -> Callable[[], Any]:
    """A weak reference to ``obj`` when it can have one, else a strong hold."""
    if obj is None or obj is ANY:
        return _Strong(obj)
    try:
        return make_ref(obj, collected)
    except TypeError:  # str, int, tuple, ...: nothing to collect
        return _Strong(obj)
