"""Waiting for events: ``expect`` and ``wait_for`` (and what
:mod:`._streaming` shares).

Neither a waiter nor a stream is a subscription: each *observes* the bus's
history (:meth:`~._history.History.observe`), which is handed every
publish's report once its receivers are done -- on all three paths, with
history on or off. So a waiter wakes after the receivers of its event ran
(what a test waiting for the side effects of ``publish_nowait`` needs), it
shows up in no ``get_subscriptions()``, and it is never skipped, timed out
or auto-disabled.

Observers run in whichever thread ended the publish: the publisher's
(``publish_sync``), the loop's (``await publish``), the worker's
(``publish_nowait``), a bridge's. The match (type, then the predicate) is
made there; what matched is handed to a waiting coroutine's loop with
``call_soon_threadsafe`` -- and if that loop is closed, the publisher never
hears of it -- and to a waiting thread with a ``threading`` primitive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Generator
from typing import Any, Generic, Protocol, TypeVar, cast, overload

from ._checks import check_timeout
from ._describe import describe, pass_interrupt
from ._errors import EventTimeoutError
from ._events import Event, EventTypeLike, PlainEventType
from ._history import History
from ._interop import running_loop
from ._report import DeliveryReport
from ._types import shown_name, type_matcher

__all__ = ["E", "Observable", "Predicate", "Waiter", "expect", "wait_for"]

logger = logging.getLogger("blinker_events")

#: A predicate: called with each event of the type; a true result matches.
Predicate = Callable[[Event], object]

#: What a waiter or stream gives: ``Event`` here; a narrower event class
#: where a typed ``expect``/``stream`` overload says so.
E = TypeVar("E", bound=Event)


class Observable(Protocol):
    """What these functions need of a bus: its history (an EventBus)."""

    _history: History


class _Match:
    """An event type (None: every type) and an optional predicate, checked."""

    __slots__ = ("event_type", "of_type", "predicate")

    def __init__(self, event_type: EventTypeLike | None, predicate: Predicate | None) -> None:
        self.of_type = type_matcher(event_type)  # a typed class: its subclasses' events too
        if predicate is not None and not callable(predicate):
            raise TypeError(f"predicate must be callable or None, not {type(predicate).__name__}")
        self.event_type = event_type
        self.predicate = predicate

    def __call__(self, event: Event) -> bool:
        """Whether ``event`` matches; the predicate's exception goes on."""
        return self.of_type(event) and (self.predicate is None or bool(self.predicate(event)))

    def test(self, event: Event, who: str) -> tuple[bool, BaseException | None]:
        """``(matches, error)``: a predicate that raises (anything: this runs
        on the publisher's thread, which it must not end) is logged, and
        counts as a match carrying its error, for the consumer to raise."""
        try:
            return self(event), None
        except BaseException as exc:
            pass_interrupt(exc)
            logger.exception("%s: the predicate %s raised on %s", who, describe(self.predicate), describe(event))
            return True, exc

    def __str__(self) -> str:
        what = "event" if self.event_type is None else f"{shown_name(self.event_type)} event"
        return what if self.predicate is None else f"{what} matching {describe(self.predicate)}"


class _Closable:
    """An observer (called with each report) with a ``close()`` for whoever
    takes it off the history but its owner."""

    __slots__ = ("close", "observe")

    def __init__(self, observe: Callable[[DeliveryReport], None], close: Callable[[], None]) -> None:
        self.observe = observe
        self.close = close

    def __call__(self, report: DeliveryReport) -> None:
        self.observe(report)


def _wake(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    """Resolve ``future`` on its ``loop`` from any thread; a closed loop
    (its consumer is gone) is no concern of the publisher's."""
    with contextlib.suppress(RuntimeError):  # the loop is closed
        loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _refuse_on_loop(what: str) -> None:
    if running_loop() is not None:
        raise RuntimeError(f"{what} would block this thread's running event loop; await it instead")


class Waiter(Generic[E]):
    """The next event matching a type and a predicate, made by ``expect``.

    ``with``/``async with`` starts observing on entering and stops on
    leaving, so an event published inside the block -- from any thread, by
    any publish -- cannot be missed; await the waiter (or call :meth:`wait`)
    inside the block. A waiter awaited without a block observes from the
    await on (as :func:`wait_for` does). It keeps the first match only.

    Awaiting (or :meth:`wait`) returns the event once its receivers ran, or
    raises :class:`EventTimeoutError` (a ``TimeoutError``) after
    ``timeout`` seconds (None: no limit), or what the predicate raised
    (which is also logged; the publish is unaffected). Cancelling an await
    inside the block leaves the waiter waiting, for a later await; one
    without a block stops observing.
    """

    def __init__(
        self, history: History, event_type: EventTypeLike | None, predicate: Predicate | None, timeout: float | None
    ) -> None:
        self._match = _Match(event_type, predicate)
        self._timeout = check_timeout(timeout)
        self._history = history
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._event: E | None = None
        self._error: BaseException | None = None
        self._wakers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._state = "new"  # "observing" inside its block, "left" after it
        # One object, to unobserve by identity; ``close`` is for whoever else
        # takes it off the history (an isolation ending): see lowlevel.observe.
        self._observer = _Closable(self._observe, self._closed_from_outside)

    @property
    def event(self) -> E | None:
        """The matching event, or None while there is none."""
        return self._event

    def done(self) -> bool:
        return self._done.is_set()

    # -- the observer ----------------------------------------------------

    def _observe(self, report: DeliveryReport) -> None:
        if self._done.is_set():
            return
        event = report.event
        matches, error = self._match.test(event, "expect")
        if not matches:
            return
        if self._settle(cast(E, event), error):
            self._history.unobserve(self._observer)  # the first match is all it keeps

    def _closed_from_outside(self) -> None:
        self._settle(None, RuntimeError("the waiter was stopped before its event came: its isolation ended"))

    def _settle(self, event: E | None, error: BaseException | None) -> bool:
        """Done, with ``event`` or ``error`` (the first call only: False after)."""
        with self._lock:
            if self._done.is_set():
                return False
            self._event, self._error = (None, error) if error is not None else (event, None)
            self._done.set()
            wakers, self._wakers = self._wakers, []
        for loop, future in wakers:
            _wake(loop, future)
        return True

    def _start(self) -> None:
        if self._state != "new":
            raise RuntimeError("a Waiter is entered once")
        self._state = "observing"
        self._history.observe(self._observer)

    def _stop(self) -> None:
        self._state = "left"
        self._history.unobserve(self._observer)

    def _result(self) -> E:
        if self._error is not None:
            raise self._error
        assert self._event is not None
        return self._event

    def _timed_out(self) -> EventTimeoutError:
        return EventTimeoutError(f"expect: no {self._match} within {self._timeout:g}s")

    def _check_waitable(self) -> bool:
        """Whether this wait observes by itself (no block around it)."""
        if self._state == "left" and not self._done.is_set():
            raise RuntimeError("the waiter's with block ended before an event came; wait inside the block")
        if self._state == "new":
            self._start()
            return True
        return False

    # -- waiting ---------------------------------------------------------

    def __await__(self) -> Generator[Any, None, E]:
        return self._wait_async().__await__()

    async def _wait_async(self) -> E:
        own = False if self._done.is_set() else self._check_waitable()
        try:
            if not self._done.is_set():
                loop = asyncio.get_running_loop()
                future: asyncio.Future[None] = loop.create_future()
                with self._lock:
                    pending = not self._done.is_set()
                    if pending:
                        self._wakers.append((loop, future))
                if pending:
                    try:
                        async with asyncio.timeout(self._timeout):
                            await future
                    except TimeoutError:
                        raise self._timed_out() from None
                    finally:
                        with self._lock:
                            if (loop, future) in self._wakers:
                                self._wakers.remove((loop, future))
            return self._result()
        finally:
            if own:
                self._stop()

    def wait(self) -> E:
        """Block this thread until the event came (see the class); raises
        RuntimeError on a thread running an event loop (await it there)."""
        _refuse_on_loop("Waiter.wait()")
        own = False if self._done.is_set() else self._check_waitable()
        try:
            if not self._done.wait(self._timeout):
                raise self._timed_out()
            return self._result()
        finally:
            if own:
                self._stop()

    # -- the block -------------------------------------------------------

    def __enter__(self) -> Waiter[E]:
        self._start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()

    async def __aenter__(self) -> Waiter[E]:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop()

    def __repr__(self) -> str:
        state = "done" if self._done.is_set() else self._state
        return f"<Waiter for {self._match} ({state})>"


# -- the bus's methods (EventBus binds these; the first argument is the bus) --


# A typed event class gives its own instances (type checkers see so too).
@overload
def expect(
    bus: Observable,
    event_type: type[E],
    predicate: Callable[[E], object] | None = None,
    *,
    timeout: float | None = None,
) -> Waiter[E]: ...
@overload
def expect(
    bus: Observable,
    event_type: PlainEventType | None,
    predicate: Predicate | None = None,
    *,
    timeout: float | None = None,
) -> Waiter[Event]: ...
def expect(
    bus: Observable,
    event_type: EventTypeLike | None,
    predicate: Any = None,
    *,
    timeout: float | None = None,
) -> Waiter[Any]:
    """A :class:`Waiter` for the next event of ``event_type`` (None: any)
    for which ``predicate(event)`` is true (None: every one), within
    ``timeout`` seconds. Enter it before publishing, and wait inside::

        async with bus.expect("payment.captured", lambda e: e.data["order"] == 42, timeout=5) as waiter:
            bus.publish_nowait(Event("payment.requested", {"order": 42}))
            event = await waiter  # or waiter.wait() in a thread

    It wakes once the event's receivers ran. ``event_type`` and
    ``predicate`` are checked now (TypeError)."""
    return Waiter[Event](bus._history, event_type, predicate, timeout)


@overload
async def wait_for(
    bus: Observable,
    event_type: type[E],
    predicate: Callable[[E], object] | None = None,
    *,
    timeout: float | None = None,
) -> E: ...
@overload
async def wait_for(
    bus: Observable,
    event_type: PlainEventType | None,
    predicate: Predicate | None = None,
    *,
    timeout: float | None = None,
) -> Event: ...
async def wait_for(
    bus: Observable,
    event_type: EventTypeLike | None,
    predicate: Any = None,
    *,
    timeout: float | None = None,
) -> Any:
    """``await bus.expect(...)``: the next matching event published from now
    on. One published before the call is missed -- use :meth:`expect`'s
    block around the publish for that."""
    return await Waiter[Event](bus._history, event_type, predicate, timeout)
