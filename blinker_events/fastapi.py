"""FastAPI: the dependency that gives a view its app's bus.

::

    from blinker_events.asgi import BlinkerEvents, publish_after_response
    from blinker_events.fastapi import EventBusDep

    app = FastAPI()
    BlinkerEvents(app, bus=bus)

    @app.post("/orders")
    async def create_order(bus: EventBusDep) -> dict[str, int]:
        await bus.publish(Event("order.checked", {"id": 1}, "web"))  # now, receivers awaited
        publish_after_response(Event("order.created", {"id": 1}, "web"))  # once the response has gone
        return {"id": 1}

Everything else -- the lifespan, after-response publishing, the request's
context -- is :mod:`blinker_events.asgi`'s, which FastAPI apps use as they
are (a FastAPI app is a Starlette app). See ``docs/fastapi.md``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from blinker_events import EventBus
from blinker_events.asgi import STATE_KEY, BlinkerEvents, get_bus

__all__ = ["EventBusDep", "bus_dependency"]


async def bus_dependency(request: Request) -> EventBus:
    """The bus of the app serving ``request`` (``app.state.blinker_events``),
    else -- in an app mounted inside one with :class:`~blinker_events.asgi.BlinkerEvents`
    -- the bus of the app whose middleware the request came through.

    Async, so FastAPI calls it on the loop rather than on a worker thread.

    :raises RuntimeError: :class:`~blinker_events.asgi.BlinkerEvents` is not installed on the app.
    """
    events = getattr(request.app.state, STATE_KEY, None)
    if isinstance(events, BlinkerEvents):
        return events.bus
    try:
        return get_bus()
    except RuntimeError:
        raise RuntimeError(
            "blinker_events is not installed on this app: call blinker_events.asgi.BlinkerEvents(app)"
        ) from None


#: A view's parameter ``bus: EventBusDep`` is its app's bus.
EventBusDep = Annotated[EventBus, Depends(bus_dependency)]
