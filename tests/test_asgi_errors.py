"""blinker_events.asgi: which errors keep a request's after-response events.

An error something turns into a response -- an ``HTTPException``, a handler
for a custom exception, for ``Exception`` or for 500, the app's own
middleware -- publishes them; an error only Starlette's own 500 answers
(no handler, or ``debug=True``'s traceback page), or a handler that raises
itself, drops them: counted, logged, futures failed."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from blinker_events import Event, EventBus
from blinker_events.asgi import BlinkerEvents, publish_after_response

from .conftest import async_wait_until, log_records
from .test_asgi import client


class OutOfStock(Exception):
    pass


async def answer(request: Any, error: Exception) -> JSONResponse:
    return JSONResponse({"handled": type(error).__name__}, status_code=500)


async def refuse(request: Any, error: Exception) -> JSONResponse:
    return JSONResponse({"handled": type(error).__name__}, status_code=409)


async def fail(request: Any, error: Exception) -> JSONResponse:
    raise RuntimeError("the handler itself fails")


def fastapi_app(bus: EventBus, error: Exception, handlers: dict[Any, Any], debug: bool = False) -> FastAPI:
    app = FastAPI(exception_handlers=handlers, debug=debug)

    @app.post("/orders")
    async def create() -> None:
        publish_after_response(Event("order.created"))
        raise error

    return app


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("error", "handlers", "status"),
    [
        (HTTPException(418), {}, 418),
        (OutOfStock(), {OutOfStock: refuse}, 409),
        (ValueError("x"), {Exception: answer}, 500),
        (ValueError("x"), {500: answer}, 500),
    ],
    ids=["http-exception", "custom-exception-handler", "exception-handler", "500-handler"],
)
async def test_an_error_a_handler_turns_into_a_response_publishes_what_was_queued(
    bus: EventBus, error: Exception, handlers: dict[Any, Any], status: int
) -> None:
    app = fastapi_app(bus, error, handlers)
    events = BlinkerEvents(app, bus=bus)
    async with client(app) as http:
        response = await http.post("/orders")
    assert response.status_code == status
    assert await async_wait_until(lambda: len(bus.get_delivery_reports()) == 1)
    assert bus.get_delivery_reports()[0].event.event_type == "order.created"
    assert events.stats() == {"queued": 1, "dropped": 0}


@pytest.mark.asyncio
async def test_a_plain_starlette_500_handler_publishes_what_was_queued(bus: EventBus) -> None:
    async def view(request: Any) -> None:
        publish_after_response(Event("order.created"))
        raise ValueError("boom")

    async def on_500(request: Any, error: Exception) -> PlainTextResponse:
        return PlainTextResponse("sorry, handled", status_code=500)

    app = Starlette(routes=[Route("/", view)], exception_handlers={500: on_500})
    events = BlinkerEvents(app, bus=bus)
    async with client(app) as http:
        assert (await http.get("/")).text == "sorry, handled"
    assert await async_wait_until(lambda: len(bus.get_delivery_reports()) == 1)
    assert events.stats() == {"queued": 1, "dropped": 0}


@pytest.mark.asyncio
async def test_the_apps_own_middleware_turning_an_error_into_a_response_publishes(bus: EventBus) -> None:
    async def catch(request: Any, call_next: Any) -> Any:
        try:
            return await call_next(request)
        except ValueError:
            return PlainTextResponse("caught", status_code=503)

    app = fastapi_app(bus, ValueError("x"), {})
    events = BlinkerEvents(app, bus=bus)
    app.add_middleware(BaseHTTPMiddleware, dispatch=catch)  # after BlinkerEvents: still inside it
    async with client(app) as http:
        assert (await http.post("/orders")).status_code == 503
    assert await async_wait_until(lambda: len(bus.get_delivery_reports()) == 1)
    assert events.stats() == {"queued": 1, "dropped": 0}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("handlers", "debug", "raised"),
    [({}, False, "ValueError"), ({Exception: answer}, True, "ValueError"), ({Exception: fail}, False, "RuntimeError")],
    ids=["no-handler", "debug-traceback", "handler-raises"],
)
async def test_an_error_only_starlettes_own_500_answers_drops_what_was_queued(
    bus: EventBus, caplog: pytest.LogCaptureFixture, handlers: dict[Any, Any], debug: bool, raised: str
) -> None:
    app = fastapi_app(bus, ValueError("x"), handlers, debug=debug)
    events = BlinkerEvents(app, bus=bus)
    ran: list[Event] = []
    bus.subscribe("order.created", ran.append)
    async with client(app) as http:
        assert (await http.post("/orders")).status_code == 500
    assert events.stats() == {"queued": 0, "dropped": 1}
    line = f"1 event(s) queued to publish after the response to POST '/orders' dropped, the app raised {raised}"
    assert log_records(caplog, logging.WARNING, line)
    assert ran == []
    assert bus.get_delivery_reports() == []


@pytest.mark.asyncio
async def test_an_error_after_a_streaming_response_began_drops_even_with_a_handler(bus: EventBus) -> None:
    from fastapi.responses import StreamingResponse

    app = FastAPI(exception_handlers={Exception: answer})
    events = BlinkerEvents(app, bus=bus)

    async def chunks() -> Any:
        yield b"first"
        raise ValueError("the stream broke")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        publish_after_response(Event("order.created"))
        return StreamingResponse(chunks())

    async with client(app) as http:
        response = await http.get("/stream")
    assert response.status_code == 200  # the handler cannot answer: the response had begun
    assert events.stats() == {"queued": 0, "dropped": 1}
    assert bus.get_delivery_reports() == []


@pytest.mark.asyncio
async def test_concurrent_handled_and_unhandled_errors_each_keep_their_own_events(bus: EventBus) -> None:
    import asyncio

    app = FastAPI(exception_handlers={OutOfStock: refuse})
    events = BlinkerEvents(app, bus=bus)

    @app.post("/orders/{n}")
    async def create(n: int) -> None:
        publish_after_response(Event("order.created", {"n": n}))
        await asyncio.sleep(0)
        raise OutOfStock() if n % 2 else LookupError(n)

    async with client(app) as http:
        statuses = await asyncio.gather(*(http.post(f"/orders/{n}") for n in range(40)))
    assert [response.status_code for response in statuses] == [500 if n % 2 == 0 else 409 for n in range(40)]
    assert await async_wait_until(lambda: len(bus.get_delivery_reports()) == 20)
    assert sorted(report.event.data["n"] for report in bus.get_delivery_reports()) == list(range(1, 40, 2))
    assert events.stats() == {"queued": 20, "dropped": 20}
