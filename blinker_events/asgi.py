"""ASGI integration (Starlette, FastAPI): :class:`BlinkerEvents` gives an app its bus.

::

    app = FastAPI(lifespan=my_lifespan)          # or Starlette(...)
    events = BlinkerEvents(app, drain_timeout=10.0)

    @app.post("/orders")
    async def create_order() -> dict[str, int]:
        publish_after_response(Event("order.created", {"id": 1}, "web"))
        return {"id": 1}

``BlinkerEvents(app)`` (or ``init_app(app)``) does two things to the app:

- it wraps the app's lifespan (``app.router.lifespan_context``, whatever
  the app was given as ``lifespan=``): before the app's own startup it
  starts the bus's loop thread and the bridges it was given; after the
  app's own shutdown it shuts the bus down -- delivering what is queued,
  flushing the bridges -- within ``drain_timeout`` seconds, what is left
  then dropped, counted and logged by the bus;
- it wraps the app's middleware stack, outermost -- outside Starlette's
  ``ServerErrorMiddleware`` and every middleware the app adds, before or
  after -- in a pure ASGI middleware which gives each HTTP request a
  :class:`RequestInfo` (:func:`current_request`, which receivers see too)
  and publishes the events the request queued with
  :func:`publish_after_response` once the response has gone out.

"Gone out" is the ASGI server having taken the last message of the
response: the ``http.response.body`` with ``more_body`` false (the last
chunk of a streaming response), or ``http.response.pathsend``. The events
then go to the bus's worker queue (``publish_nowait``), in the order they
were queued, each in the context the view queued it from: they are tracked
and drained at shutdown like any queued event, and their receivers never
run on the event loop's thread. An error a handler turns into a response
(an ``HTTPException``, a handler for its class, for ``Exception`` or for
500) is a response. If the app raises instead -- no response went out, or
the one that did is Starlette's own 500 (no handler for ``500``/``Exception``,
or ``debug=True``'s traceback) -- the events are dropped (counted in
:meth:`BlinkerEvents.stats`, logged at WARNING, their futures failed): the
view did not do what they announce. A client that goes away -- the request task cancelled, the send
failing, Starlette's ``ClientDisconnect`` -- does not drop them: what the
view did is done, so they are published.

The guide -- the lifespan and the drain bound, what receivers see of the
request, what views should call, the limits -- is the FastAPI page of the
documentation: https://blinker-events.readthedocs.io/en/latest/fastapi.html (``docs/fastapi.md``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import blinker_events
from blinker_events import DeliveryReport, Event, EventBus
from blinker_events.lowlevel import bus_loop, check_timeout, describe, left_running

from ._asgi_request import CURRENT, _is_last, _Marker, _Request

__all__ = [
    "STATE_KEY",
    "BlinkerEvents",
    "Bridge",
    "RequestInfo",
    "current_request",
    "get_bus",
    "publish_after_response",
]

logger = logging.getLogger("blinker_events")

#: The attribute of ``app.state`` that holds the app's :class:`BlinkerEvents`.
STATE_KEY = "blinker_events"

#: A request id taken from the client's header must look like one: at most
#: 128 printable ASCII characters without spaces. Anything else is replaced.
_REQUEST_ID = re.compile(r"[!-~]{1,128}")
#: A header name is an RFC 9110 token: letters, digits and these symbols.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class Bridge(Protocol):
    """What :class:`BlinkerEvents` starts with the app: a
    :class:`~blinker_events.redis.RedisBridge`, or anything with its
    ``start``. It is stopped by the bus's shutdown (a bridge is an outlet
    of the bus), after the queue drained into it."""

    def start(self, *, timeout: float | None = ...) -> bool:
        """Start; False if it could not connect within ``timeout`` (it keeps trying)."""
        ...


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The request a publish came from, as :func:`current_request` gives it:
    plain data copied from the ASGI scope when the request began, so safe to
    read after the response has gone (the request object is not: its body
    and connection belong to the server).

    ``request_id`` is the request's ``X-Request-ID`` header (the header
    :class:`BlinkerEvents` was told to read) when it holds 1-128 printable
    ASCII characters without spaces, else a fresh random hex id; ``method``
    and ``path`` are the scope's; ``client`` is ``(host, port)``, or None
    when the server does not say.
    """

    request_id: str
    method: str
    path: str
    client: tuple[str, int] | None


def current_request() -> RequestInfo | None:
    """The :class:`RequestInfo` of the HTTP request this code runs for, or None.

    In a view, its dependencies and what they call; and in the receivers of
    what a request publishes -- after the response (:func:`publish_after_response`),
    or with ``await bus.publish`` / ``publish_nowait`` from the request --
    because the bus carries the publisher's context variables to its
    receivers. None outside a request through :class:`BlinkerEvents`'
    middleware (a websocket, the lifespan, another thread started without
    the request's context).
    """
    request = CURRENT.get()
    return None if request is None else request.info


def publish_after_response(event: Event, *, timeout: float | None = None) -> Future[DeliveryReport]:
    """Queue ``event`` to publish once the current request's response has
    gone out; when it has already (a background task), queue it now.

    It is published with ``publish_nowait`` on the app's bus, in the context
    this was called from (so its receivers see :func:`current_request` and
    the caller's context variables), in the order queued. If the app raises
    before the response is complete, it is dropped: counted, logged, and the
    returned future failed with :class:`~blinker_events.EventSystemError`.
    The future resolves as ``publish_nowait``'s does, to the report; it
    fails with :class:`~blinker_events.QueueFullError` when the bus's full
    queue refuses the event, and cannot be cancelled (``cancel()`` returns
    False: what the request announced is not withdrawn). Safe to call from
    any thread the request's context reached (a sync view runs on a worker
    thread with a copy of it).

    :param event: the :class:`~blinker_events.Event`.
    :param timeout: per-receiver timeout for this publish; None: the bus's.
    :returns: a :class:`concurrent.futures.Future` of the report.
    :raises TypeError, ValueError: ``event`` is not an Event, or a bad ``timeout``.
    :raises RuntimeError: not inside a request handled by :class:`BlinkerEvents`' middleware.
    """
    if not isinstance(event, Event):
        raise TypeError(f"event must be an Event, not {type(event).__name__}")
    timeout = check_timeout(timeout)
    request = CURRENT.get()
    if request is None:
        raise RuntimeError(
            "publish_after_response() outside a request: the app needs BlinkerEvents(app), "
            "and the call must run in the request's context"
        )
    future: Future[DeliveryReport] = Future()
    # Running from the start: cancel() is refused (False), so a caller cannot
    # withdraw what the request announced, nor make the handoff fail later.
    future.set_running_or_notify_cancel()
    request.queue(event, timeout, future)
    return future


def get_bus(app: Starlette | None = None) -> EventBus:
    """The bus of ``app``, or of the current request's app when None.

    :param app: a Starlette (FastAPI) app given to :class:`BlinkerEvents`; None: the current request's.
    :raises TypeError: ``app`` is neither None nor a Starlette app.
    :raises RuntimeError: no ``app`` and not in a request through the
        middleware, or :class:`BlinkerEvents` is not installed on ``app``.
    """
    if app is None:
        request = CURRENT.get()
        if request is None:
            raise RuntimeError("blinker_events: no app given and not inside a request through BlinkerEvents")
        return request.events.bus
    if not isinstance(app, Starlette):
        raise TypeError(f"app must be a Starlette or FastAPI app or None, not {type(app).__name__}")
    events = getattr(app.state, STATE_KEY, None)
    if not isinstance(events, BlinkerEvents):
        raise RuntimeError("blinker_events is not installed on this app: call BlinkerEvents(app)")
    return events.bus


class BlinkerEvents:
    """The bus of one Starlette or FastAPI app: its lifespan and its
    after-response publishing (see the module's documentation).

    :param app: the app; None to call :meth:`init_app` later.
    :param bus: the :class:`~blinker_events.EventBus`; None: :data:`blinker_events.default_bus`.
    :param drain_timeout: seconds the shutdown at the end of the lifespan
        may take (queue, bridges and loop thread together); None: until
        drained. Keep it below the server's own shutdown bound.
    :param bridges: started (on the bus's loop thread) before the app's
        startup; the bus's shutdown stops them.
    :param start_timeout: seconds each bridge's start may wait for its server.
    :param request_id_header: the header :class:`RequestInfo`'s ``request_id`` is
        read from; None: always a fresh id.
    :raises TypeError, ValueError: a bad argument, named.
    """

    def __init__(
        self,
        app: Starlette | None = None,
        *,
        bus: EventBus | None = None,
        drain_timeout: float | None = 10.0,
        bridges: Iterable[Bridge] = (),
        start_timeout: float | None = 10.0,
        request_id_header: str | None = "x-request-id",
    ) -> None:
        if bus is not None and not isinstance(bus, EventBus):
            raise TypeError(f"bus must be an EventBus or None, not {type(bus).__name__}")
        self.drain_timeout = check_timeout(drain_timeout, "drain_timeout")
        self.start_timeout = check_timeout(start_timeout, "start_timeout")
        if isinstance(bridges, (str, bytes)) or not isinstance(bridges, Iterable):
            raise TypeError(f"bridges must be an iterable of bridges, not {type(bridges).__name__}")
        self.bridges: tuple[Bridge, ...] = tuple(bridges)
        for bridge in self.bridges:
            if not callable(getattr(bridge, "start", None)):
                raise TypeError(f"bridges: {describe(bridge)} has no start() method")
        if request_id_header is not None and not isinstance(request_id_header, str):
            raise TypeError(f"request_id_header must be a str or None, not {type(request_id_header).__name__}")
        if request_id_header is not None and not _TOKEN.fullmatch(request_id_header):
            raise ValueError(f"request_id_header must be a header name, not {describe(request_id_header)}")
        self._header = None if request_id_header is None else request_id_header.lower().encode("latin-1")
        self.bus: EventBus = blinker_events.default_bus if bus is None else bus
        self.app: Starlette | None = None
        #: What the last lifespan's shutdown dropped (None before one ended):
        #: still queued at the bound, or dropped by a bridge as it closed.
        self.last_drain_dropped: int | None = None
        #: What it left still being delivered (not dropped; None before one ended).
        self.last_drain_running: int | None = None
        self._counts = {"queued": 0, "dropped": 0}
        self._counts_lock = threading.Lock()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Starlette) -> None:
        """Wrap ``app``'s lifespan and add the middleware; the instance is
        then ``app.state.blinker_events``. Call it before the app serves
        (Starlette refuses middleware after that).

        :raises TypeError: ``app`` is not a Starlette (or FastAPI) app.
        :raises RuntimeError: this instance already serves an app, or ``app`` already has one.
        """
        if not isinstance(app, Starlette):
            raise TypeError(f"app must be a Starlette or FastAPI app, not {type(app).__name__}")
        if self.app is not None:
            raise RuntimeError("this BlinkerEvents already serves an app; make one per app")
        if isinstance(getattr(app.state, STATE_KEY, None), BlinkerEvents):
            raise RuntimeError("blinker_events is already installed on this app")
        if app.middleware_stack is not None:
            raise RuntimeError("BlinkerEvents(app) after the app has started: call it before the app serves")
        build = app.build_middleware_stack

        def build_around() -> ASGIApp:
            # Outside ServerErrorMiddleware, so a handler's 500 response is
            # seen going out; the marker inside it tells that response apart.
            stack = build()
            errors = stack if isinstance(stack, ServerErrorMiddleware) else None
            if errors is not None:
                errors.app = _Marker(errors.app)
            return _Middleware(stack, self, errors)

        app.build_middleware_stack = build_around  # type: ignore[method-assign]
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(served: Any) -> AsyncIterator[Any]:  # the state the app's own yields, if any
            try:
                await self._start()
                async with inner(served) as state:
                    yield state
            finally:  # also when a bridge or the app's own startup failed
                await self._stop()

        app.router.lifespan_context = lifespan
        setattr(app.state, STATE_KEY, self)
        self.app = app

    def stats(self) -> dict[str, int]:
        """``queued``: events handed to the bus after their response (or
        refused by its full queue, which the bus counts); ``dropped``:
        events not published because the app raised before its response
        was complete."""
        with self._counts_lock:
            return dict(self._counts)

    def _count(self, what: str, n: int = 1) -> None:
        with self._counts_lock:
            self._counts[what] += n

    def _publish(self, event: Event, timeout: float | None, future: Future[DeliveryReport]) -> None:
        self._count("queued")
        try:
            queued = self.bus.publish_nowait(event, timeout=timeout)
        except Exception as error:  # QueueFullError: the bus counted and logged it
            future.set_exception(error)
            return
        queued.add_done_callback(lambda done: _copy(done, future))

    async def _start(self) -> None:
        # Off the loop: a bridge's start waits for its server.
        await asyncio.to_thread(self._start_threads)

    def _start_threads(self) -> None:
        bus_loop(self.bus).loop()  # the first request need not wait for it
        for bridge in self.bridges:
            if not bridge.start(timeout=self.start_timeout):
                logger.warning("bridge %s not connected at startup; it keeps trying", describe(bridge))

    async def _stop(self) -> None:
        dropped = await asyncio.to_thread(self.bus.shutdown, self.drain_timeout)
        self.last_drain_dropped = dropped
        self.last_drain_running = running = left_running(self.bus)
        counts = self.stats()
        (logger.warning if dropped or running else logger.info)(
            "bus %r shut down at the end of the lifespan, %d delivery(ies) dropped (queued here, or unwritten by "
            "a bridge), %d still being "
            "delivered (left running, not dropped: cut off if the process exits now) "
            "(after their response: %d queued, %d dropped because the app raised)",
            self.bus.name,
            dropped,
            running,
            counts["queued"],
            counts["dropped"],
        )

    def __repr__(self) -> str:
        return f"<blinker_events.asgi.BlinkerEvents bus {self.bus.name!r}, drain_timeout {self.drain_timeout}>"


def _copy(source: Future[DeliveryReport], target: Future[DeliveryReport]) -> None:
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


class _Middleware:
    """Pure ASGI (no response buffering, streaming untouched), outside the
    whole stack: the request's info in a context variable, and its queued
    events published once the last message of its response was handed to
    the server -- unless that response is Starlette's own 500 for an error
    no handler took (``errors`` has no handler, or is in debug mode)."""

    def __init__(self, app: ASGIApp, events: BlinkerEvents, errors: ServerErrorMiddleware | None) -> None:
        self.app = app
        self.events = events
        self.errors = errors

    def _a_response(self, request: _Request) -> bool:
        """Whether what the app sends is a response (see the module doc): it
        raised nothing, or a handler makes a response of what it raised --
        not Starlette's own 500 (or debug traceback)."""
        errors = self.errors
        return request.raised is None or (errors is not None and errors.handler is not None and not errors.debug)

    def _sent(self, request: _Request) -> None:
        if self._a_response(request):
            request.complete()  # a response, or the response a handler made of the error
        else:
            assert request.raised is not None  # Starlette's own 500 (or debug traceback): the app raised
            request.abandon(request.raised)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _Request(self.events, _info(scope, self.events._header))
        token = CURRENT.set(request)

        async def watch(message: Message) -> None:
            try:
                await send(message)
            except BaseException:
                # The client left (the server's send fails on a closed
                # connection, as the ASGI spec asks): if what was being
                # sent is a response, what the view did is done.
                if self._a_response(request):
                    request.client_gone = True
                raise
            finally:  # a send that fails because the client left still ends the response
                if _is_last(message):
                    self._sent(request)

        try:
            await self.app(scope, receive, watch)
        except ClientDisconnect:
            request.complete()
            raise
        except Exception as error:  # no response went out (a handler that raised, a broken stream)
            if request.client_gone:  # ... because the send failed: see watch
                request.complete()
            else:
                request.abandon(error)
            raise
        except BaseException:  # cancelled: the client left, or the server is stopping
            request.complete()
            raise
        else:
            request.complete()  # a response cut short by a disconnect: the view's work is done
        finally:
            CURRENT.reset(token)


def _info(scope: Scope, header: bytes | None) -> RequestInfo:
    request_id = None
    if header is not None:
        for name, value in scope.get("headers", ()):
            if name == header:
                text = value.decode("latin-1")
                request_id = text if _REQUEST_ID.fullmatch(text) else None
                break
    client = scope.get("client")
    return RequestInfo(
        request_id=request_id or uuid.uuid4().hex,
        method=str(scope.get("method", "")),
        path=str(scope.get("path", "")),
        client=(str(client[0]), int(client[1])) if client else None,
    )
