"""Streaming events: ``stream``, an iterator over matching events with a
bounded buffer (see :mod:`._waiting` for how it observes the bus)."""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, Generic, cast, overload

from ._checks import check_positive_int, check_timeout
from ._describe import describe
from ._errors import EventTimeoutError
from ._events import Event, EventTypeLike, PlainEventType
from ._history import History
from ._report import DeliveryReport
from ._waiting import E, Observable, Predicate, _Match, _refuse_on_loop, _wake

__all__ = ["EventStream", "stream"]

logger = logging.getLogger("blinker_events")

#: The default bound of a stream's buffer.
STREAM_SIZE = 100


class _Feed:
    """A stream's buffer and its observer. Held by the history while it
    observes; holds nothing of the stream, so a stream its consumer
    dropped is collected, and its finalizer ends the observing."""

    def __init__(self, match: _Match, maxsize: int) -> None:
        self.match = match
        self.maxsize = maxsize
        self.items: deque[Event | BaseException] = deque()
        self.dropped = 0
        self.closed = False
        self.ready = threading.Condition(threading.Lock())
        #: The futures of consumers awaiting the next event: all are woken,
        #: and each looks again (one stream may have several consumers).
        self.wakers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def close(self) -> None:
        """No more events: readers get what is buffered, then the end. (Also
        called by whoever takes this feed off the history but its stream:
        an isolation ending; see lowlevel.observe.)"""
        with self.ready:
            self.closed = True
            self.ready.notify_all()
            wakers, self.wakers = self.wakers, []
        for waker in wakers:
            _wake(*waker)

    def __call__(self, report: DeliveryReport) -> None:
        event = report.event
        matches, error = self.match.test(event, "stream")
        if not matches:
            return
        item: Event | BaseException = event if error is None else error
        dropped: Event | BaseException | None = None
        with self.ready:
            if self.closed:
                return
            if len(self.items) >= self.maxsize:
                dropped = self.items.popleft()
                self.dropped += 1
            self.items.append(item)
            self.ready.notify()
            wakers, self.wakers = self.wakers, []
        if dropped is not None:
            logger.warning(
                "stream for %s full (%d): dropped the oldest event %s (%d dropped so far)",
                self.match,
                self.maxsize,
                describe(dropped),
                self.dropped,
            )
        for waker in wakers:
            _wake(*waker)


class EventStream(Generic[E]):
    """Matching events as they are published, made by ``stream``: iterate
    it with ``async for`` (or ``for``, in a thread).

    It observes from the moment it is made, buffering up to ``maxsize``
    events (oldest first) until the consumer takes them. When the buffer is
    full the oldest is dropped: counted in :attr:`dropped` and logged as a
    warning, never silently, and memory stays bounded. Each wait for the
    next event lasts at most ``timeout`` seconds (None: no limit), then
    raises :class:`EventTimeoutError`; the stream stays usable. A predicate
    that raises is logged, and its exception raised to the consumer in the
    event's place.

    It stops observing when closed: :meth:`close`, leaving an ``async
    with``/``with`` block, or -- when the consumer just stops (``break``, an
    exception, a cancelled task) -- once the stream is garbage-collected,
    which in CPython is at once when nothing else refers to it. Iterating a
    closed stream yields what was buffered, then ends.
    """

    def __init__(
        self,
        history: History,
        event_type: EventTypeLike | None,
        predicate: Predicate | None,
        maxsize: int,
        timeout: float | None,
    ) -> None:
        match = _Match(event_type, predicate)
        maxsize = check_positive_int(maxsize, "maxsize")
        self._timeout = check_timeout(timeout)
        self._feed = feed = _Feed(match, maxsize)
        history.observe(feed)
        self._finalizer = weakref.finalize(self, _end_feed, history, feed)

    @property
    def dropped(self) -> int:
        """Events dropped because the buffer was full."""
        return self._feed.dropped

    @property
    def maxsize(self) -> int:
        return self._feed.maxsize

    @property
    def closed(self) -> bool:
        return self._feed.closed

    def __len__(self) -> int:
        """Events buffered now."""
        return len(self._feed.items)

    def close(self) -> None:
        """Stop observing; what is buffered can still be read."""
        self._finalizer()

    def _take(self) -> E:
        item = self._feed.items.popleft()
        if isinstance(item, BaseException):
            raise item
        return cast(E, item)

    def _timed_out(self) -> EventTimeoutError:
        return EventTimeoutError(f"stream: no {self._feed.match} within {self._timeout:g}s")

    # -- async -----------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[E]:
        return self

    async def __anext__(self) -> E:
        feed = self._feed
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                while True:
                    with feed.ready:
                        if feed.items:
                            return self._take()
                        if feed.closed:
                            raise StopAsyncIteration
                        waker = (loop, loop.create_future())
                        feed.wakers.append(waker)
                    try:
                        await waker[1]
                    finally:
                        with feed.ready:
                            if waker in feed.wakers:
                                feed.wakers.remove(waker)
        except TimeoutError:
            raise self._timed_out() from None

    async def __aenter__(self) -> EventStream[E]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # -- sync ------------------------------------------------------------

    def __iter__(self) -> Iterator[E]:
        return self

    def __next__(self) -> E:
        _refuse_on_loop("iterating an EventStream with for")
        feed = self._feed
        with feed.ready:
            if not feed.ready.wait_for(lambda: feed.items or feed.closed, self._timeout):
                raise self._timed_out()
            if feed.items:
                return self._take()
        raise StopIteration

    def __enter__(self) -> EventStream[E]:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._feed.closed else "open"
        return f"<EventStream for {self._feed.match} ({state}, {len(self)} buffered, {self.dropped} dropped)>"


def _end_feed(history: History, feed: _Feed) -> None:
    history.unobserve(feed)
    feed.close()


# A typed event class gives its own instances (type checkers see so too).
@overload
def stream(
    bus: Observable,
    event_type: type[E],
    predicate: Callable[[E], object] | None = None,
    *,
    maxsize: int = STREAM_SIZE,
    timeout: float | None = None,
) -> EventStream[E]: ...
@overload
def stream(
    bus: Observable,
    event_type: PlainEventType | None,
    predicate: Predicate | None = None,
    *,
    maxsize: int = STREAM_SIZE,
    timeout: float | None = None,
) -> EventStream[Event]: ...
def stream(
    bus: Observable,
    event_type: EventTypeLike | None,
    predicate: Any = None,
    *,
    maxsize: int = STREAM_SIZE,
    timeout: float | None = None,
) -> EventStream[Any]:
    """An :class:`EventStream` of the events of ``event_type`` (None: all)
    for which ``predicate`` is true, observed from now on::

        async with bus.stream("order.placed") as orders:
            async for event in orders:
                ...

    At most ``maxsize`` wait to be read (the oldest is dropped, counted in
    ``stream.dropped`` and logged); each wait lasts at most ``timeout``."""
    return EventStream[Event](bus._history, event_type, predicate, maxsize, timeout)
