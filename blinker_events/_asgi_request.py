"""One HTTP request through :mod:`blinker_events.asgi`'s middleware: the
events it queued with ``publish_after_response``, published once its
response has gone out or dropped when the app raised instead; and the two
things the middleware reads that from: which message ends a response, and
the marker that notes what the app raised.

Private to :mod:`blinker_events.asgi` (not a core module: it is the ASGI
integration's own, kept apart so each module stays readable).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from blinker_events import DeliveryReport, Event, EventSystemError
from blinker_events.lowlevel import describe, shown_name

if TYPE_CHECKING:
    from .asgi import BlinkerEvents, RequestInfo

logger = logging.getLogger("blinker_events")

_Pending = list[tuple[Event, float | None, contextvars.Context, Future[DeliveryReport]]]


class _Request:
    """One HTTP request through the middleware: its info, the events it
    queued until the response has gone (then None), the first exception
    that passed the inner marker (see ``asgi._Marker``), and whether the
    server's ``send`` failed before the app raised anything (the client
    left: what the view did is done, whatever that failure then makes the
    app raise)."""

    __slots__ = ("client_gone", "events", "info", "lock", "pending", "raised")

    def __init__(self, events: BlinkerEvents, info: RequestInfo) -> None:
        self.events = events
        self.info = info
        self.lock = threading.Lock()  # sync views and their threads queue too
        self.pending: _Pending | None = []
        self.raised: Exception | None = None
        self.client_gone = False

    def queue(self, event: Event, timeout: float | None, future: Future[DeliveryReport]) -> None:
        with self.lock:
            if self.pending is not None:
                self.pending.append((event, timeout, contextvars.copy_context(), future))
                return
        # The response has gone already (a background task, say): now.
        self.events._publish(event, timeout, future)

    def _take(self) -> _Pending:
        with self.lock:
            pending, self.pending = self.pending, None
        return pending or []

    def complete(self) -> None:
        """The response has gone (or the client has): publish what was queued."""
        for event, timeout, context, future in self._take():
            context.run(self.events._publish, event, timeout, future)

    def abandon(self, error: BaseException) -> None:
        """The app raised instead of a response: drop what was queued."""
        dropped = self._take()
        if not dropped:
            return
        self.events._count("dropped", len(dropped))
        logger.warning(
            "%d event(s) queued to publish after the response to %s %s dropped, the app raised %s: %s",
            len(dropped),
            self.info.method,
            describe(self.info.path),
            type(error).__name__,
            _types_of(event for event, *_ in dropped),
        )
        for _, _, _, future in dropped:
            future.set_exception(EventSystemError(f"not published: the app raised {describe(error)}"))


CURRENT: contextvars.ContextVar[_Request | None] = contextvars.ContextVar("blinker_events.asgi.request", default=None)


def _types_of(events: Iterable[Event], shown: int = 5) -> str:
    """The event types of ``events`` for a log line: the first few, then how many more."""
    names = [shown_name(event.event_type) for event in events]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _is_last(message: Message) -> bool:
    kind = message["type"]
    return (kind == "http.response.body" and not message.get("more_body", False)) or kind == "http.response.pathsend"


class _Marker:
    """Just inside Starlette's ``ServerErrorMiddleware``: notes on the request
    the exception the app raised, before that middleware turns it into a 500
    response (its handler's, or its own) and raises it on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:  # the client left: what the view did is done
            raise
        except Exception as error:
            request = CURRENT.get()
            if request is not None and request.raised is None:
                request.raised = error
            raise
