"""blinker_events.asgi and blinker_events.fastapi through real ASGI calls:
httpx's ASGITransport for requests, and the ASGI lifespan protocol driven
as a server drives it (startup, then shutdown, as messages)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI, HTTPException, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request

from blinker_events import Event, EventBus, EventSystemError, QueueFullError
from blinker_events.asgi import BlinkerEvents, RequestInfo, current_request, get_bus, publish_after_response
from blinker_events.fastapi import EventBusDep

from .conftest import BusFactory, async_wait_until, log_records

LIFESPAN_SCOPE = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}


class Served:
    """An app between the lifespan's startup and its shutdown."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> dict[str, Any]:
        scope = {**LIFESPAN_SCOPE, "state": self.state}
        self._task = asyncio.create_task(self.app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "lifespan.startup"})
        return await asyncio.wait_for(self._from_app.get(), 10)

    async def shutdown(self) -> dict[str, Any]:
        await self._to_app.put({"type": "lifespan.shutdown"})
        message = await asyncio.wait_for(self._from_app.get(), 10)
        assert self._task is not None
        await asyncio.wait_for(self._task, 10)
        return message


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[Served]:
    served = Served(app)
    assert (await served.startup())["type"] == "lifespan.startup.complete"
    try:
        yield served
    finally:
        assert (await served.shutdown())["type"] == "lifespan.shutdown.complete"


def client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def app_with(bus: EventBus, **options: Any) -> tuple[FastAPI, BlinkerEvents]:
    app = FastAPI(**options.pop("app_options", {}))
    return app, BlinkerEvents(app, bus=bus, **options)


@pytest.mark.asyncio
async def test_the_response_is_sent_before_the_receiver_runs(bus: EventBus) -> None:
    app, _ = app_with(bus)
    sent: list[dict[str, Any]] = []
    at_receiver: list[int] = []
    ran_when_final_body_sent: list[bool] = []

    @bus.subscribe("order.created")
    def receiver(event: Event) -> None:
        at_receiver.append(len(sent))

    @app.post("/orders")
    async def create() -> dict[str, int]:
        publish_after_response(Event("order.created", {"id": 7}))
        await asyncio.sleep(0.05)  # time enough for a receiver started too early
        return {"id": 7}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:  # the server's side of the response
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            ran_when_final_body_sent.append(bool(at_receiver))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "path": "/orders",
             "raw_path": b"/orders", "query_string": b"", "headers": [], "scheme": "http", "server": ("t", 80),
             "client": ("127.0.0.1", 5000), "root_path": "", "state": {}}  # fmt: skip
    await app(scope, receive, send)
    assert await async_wait_until(lambda: at_receiver)
    assert ran_when_final_body_sent == [False]
    assert at_receiver == [len(sent)] == [2]  # start and body both gone when it ran


@pytest.mark.asyncio
async def test_events_in_flight_at_shutdown_are_all_delivered(bus: EventBus) -> None:
    app, events = app_with(bus)
    delivered: list[int] = []

    @bus.subscribe("order.created")
    def slow(event: Event) -> None:
        time.sleep(0.02)
        delivered.append(event.data["n"])

    @app.post("/orders/{n}")
    async def create(n: int) -> dict[str, int]:
        publish_after_response(Event("order.created", {"n": n}))
        return {"n": n}

    async with serving(app), client(app) as http:
        answers = await asyncio.gather(*(http.post(f"/orders/{n}") for n in range(30)))
        assert [a.status_code for a in answers] == [200] * 30
        assert len(delivered) < 30  # still in flight when the shutdown begins
    assert sorted(delivered) == list(range(30))
    assert events.last_drain_dropped == 0
    assert events.stats() == {"queued": 30, "dropped": 0}


@pytest.mark.asyncio
async def test_the_drain_bound_cuts_a_hung_receiver_and_counts_what_is_left(
    new_bus: BusFactory, gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus()
    app, events = app_with(bus, drain_timeout=0.2)

    @bus.subscribe("job")
    def hung(event: Event) -> None:
        gate.wait(10)

    @app.post("/jobs")
    async def create() -> dict[str, bool]:
        for _ in range(3):
            publish_after_response(Event("job"))
        return {"ok": True}

    started = time.monotonic()
    async with serving(app), client(app) as http:
        assert (await http.post("/jobs")).status_code == 200
    assert time.monotonic() - started < 5
    assert events.last_drain_dropped == 2  # the first is held by the receiver; the two behind it dropped
    assert log_records(caplog, logging.WARNING, "2 delivery(ies) dropped")


@pytest.mark.asyncio
async def test_the_lifespans_summary_counts_an_event_a_slow_receiver_was_still_delivering(
    new_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = new_bus()
    app, events = app_with(bus, drain_timeout=0.2)
    done: list[int] = []

    @bus.subscribe("job")
    def slow(event: Event) -> None:  # slow, not hung: it ends after the bound
        time.sleep(0.6)
        done.append(event.data["n"])

    @app.post("/jobs")
    async def create() -> None:
        for n in range(4):
            publish_after_response(Event("job", {"n": n}))

    async with serving(app), client(app) as http:
        assert (await http.post("/jobs")).status_code == 200
    assert (events.last_drain_dropped, events.last_drain_running) == (3, 1)
    assert log_records(
        caplog,
        logging.WARNING,
        "3 delivery(ies) dropped (queued here, or unwritten by a bridge), "
        "1 still being delivered (left running, not dropped",
    )
    assert await async_wait_until(lambda: done == [0], timeout=5)  # it went on, and ended


@pytest.mark.asyncio
async def test_an_app_that_raises_drops_what_its_view_queued_counted_and_logged(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    app, events = app_with(bus)
    ran: list[Event] = []
    bus.subscribe("order.created", ran.append)
    futures = []

    @app.post("/orders")
    async def create() -> None:
        futures.append(publish_after_response(Event("order.created")))
        raise LookupError("no such stock")

    async with client(app) as http:
        answer = await http.post("/orders")
    assert (answer.status_code, answer.text) == (500, "Internal Server Error")  # Starlette's own 500
    assert isinstance(futures[0].exception(timeout=5), EventSystemError)
    assert "LookupError" in str(futures[0].exception())
    assert events.stats() == {"queued": 0, "dropped": 1}
    assert log_records(caplog, logging.WARNING, "1 event(s) queued to publish after the response to POST '/orders'")
    assert ran == []


@pytest.mark.asyncio
async def test_an_http_exception_is_a_response_and_what_was_queued_is_published(bus: EventBus) -> None:
    app, events = app_with(bus)

    @app.post("/orders")
    async def create() -> None:
        publish_after_response(Event("order.refused"))
        raise HTTPException(409, "out of stock")

    async with client(app) as http:
        assert (await http.post("/orders")).status_code == 409
    assert await async_wait_until(lambda: len(bus.get_delivery_reports()) == 1)
    assert events.stats() == {"queued": 1, "dropped": 0}


@pytest.mark.asyncio
async def test_a_cancelled_request_publishes_what_it_queued_and_no_receiver_counts_it_a_failure(bus: EventBus) -> None:
    app, events = app_with(bus)
    entered = asyncio.Event()
    queued_receiver: list[Event] = []
    bus.subscribe("order.created", queued_receiver.append)

    @bus.subscribe("order.checked")
    async def slow_check(event: Event) -> None:
        entered.set()
        await asyncio.sleep(30)

    @app.post("/orders")
    async def create(events_bus: EventBusDep) -> dict[str, bool]:
        publish_after_response(Event("order.created"))
        await events_bus.publish(Event("order.checked"))
        return {"ok": True}

    async with client(app) as http:
        request = asyncio.create_task(http.post("/orders"))
        await asyncio.wait_for(entered.wait(), 5)
        request.cancel()  # the client went away: its request task is cancelled
        with pytest.raises(asyncio.CancelledError):
            await request
    assert await async_wait_until(lambda: queued_receiver)
    (checked,) = [r for r in bus.get_delivery_reports() if r.event.event_type == "order.checked"]
    assert [s.name for s in checked.cancelled] == [bus.get_subscriptions("order.checked")[0].name]
    assert checked.failed == ()
    assert [(s.failures, s.disabled) for s in bus.get_subscriptions("order.checked")] == [(0, False)]
    assert events.stats() == {"queued": 1, "dropped": 0}


@pytest.mark.asyncio
async def test_a_hung_receiver_holds_no_response(new_bus: BusFactory, gate: threading.Event) -> None:
    bus = new_bus(timeout=0.2)
    app, _ = app_with(bus)

    @bus.subscribe("after")
    def hung_sync(event: Event) -> None:
        gate.wait(10)

    @bus.subscribe("now")
    async def hung_async(event: Event) -> None:
        await asyncio.sleep(30)

    @app.post("/orders")
    async def create(events_bus: EventBusDep) -> dict[str, int]:
        publish_after_response(Event("after"))
        report = await events_bus.publish(Event("now"))
        return {"timed_out": len(report.timed_out)}

    started = time.monotonic()
    async with client(app) as http:
        answer = await http.post("/orders")
    assert time.monotonic() - started < 5
    assert (answer.status_code, answer.json()) == (200, {"timed_out": 1})
    gate.set()


@pytest.mark.asyncio
async def test_a_failing_receiver_fails_no_response_and_is_disabled_at_its_threshold(new_bus: BusFactory) -> None:
    bus = new_bus(failure_threshold=2)
    app, _ = app_with(bus)

    @bus.subscribe("order.created")
    def crm(event: Event) -> None:
        raise ConnectionError("CRM down")

    @bus.subscribe("order.checked")
    def broken_check(event: Event) -> None:
        raise ValueError("bad check")

    @app.post("/orders")
    async def create(events_bus: EventBusDep) -> dict[str, int]:
        publish_after_response(Event("order.created"))
        report = await events_bus.publish(Event("order.checked"))
        return {"failed": len(report.failed)}

    async with client(app) as http:
        answers = [await http.post("/orders") for _ in range(3)]
    # The third publish finds broken_check disabled by the second.
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"failed": 1})] * 2 + [(200, {"failed": 0})]
    assert await async_wait_until(lambda: bus.get_subscriptions("order.created")[0].disabled)
    assert bus.get_subscriptions("order.checked")[0].disabled


@pytest.mark.asyncio
async def test_sync_receivers_run_off_the_loop_thread(bus: EventBus) -> None:
    app, _ = app_with(bus)
    threads: dict[str, int] = {}
    bus.subscribe("after", lambda event: threads.setdefault("after", threading.get_ident()))
    bus.subscribe("now", lambda event: threads.setdefault("now", threading.get_ident()))

    @app.post("/orders")
    async def create(events_bus: EventBusDep) -> dict[str, int]:
        publish_after_response(Event("after"))
        await events_bus.publish(Event("now"))
        return {"loop": threading.get_ident()}

    async with client(app) as http:
        loop_thread = (await http.post("/orders")).json()["loop"]
    assert await async_wait_until(lambda: len(threads) == 2)
    assert loop_thread == threading.get_ident()
    assert loop_thread not in threads.values()


@pytest.mark.asyncio
async def test_receivers_on_every_path_see_the_request_they_came_from(bus: EventBus) -> None:
    app, _ = app_with(bus)
    seen: dict[str, RequestInfo | None] = {}

    @bus.subscribe("after")
    def after(event: Event) -> None:
        seen["after"] = current_request()

    @bus.subscribe("now")
    def now_sync(event: Event) -> None:
        seen["now sync"] = current_request()

    @bus.subscribe("now")
    async def now_async(event: Event) -> None:
        seen["now async"] = current_request()

    @app.post("/orders")
    async def create(events_bus: EventBusDep) -> None:
        publish_after_response(Event("after"))
        await events_bus.publish(Event("now"))

    async with client(app) as http:
        await http.post("/orders", headers={"X-Request-ID": "req-42"})
    assert await async_wait_until(lambda: len(seen) == 3)
    expected = RequestInfo("req-42", "POST", "/orders", ("127.0.0.1", 123))
    assert seen == {"after": expected, "now sync": expected, "now async": expected}
    assert current_request() is None


def app_showing_request_id(bus: EventBus) -> FastAPI:
    """An app with BlinkerEvents whose GET /id answers current_request()'s id."""
    app, _ = app_with(bus)

    @app.get("/id")
    async def show() -> str:
        info = current_request()
        assert info is not None
        return info.request_id

    return app


@pytest.mark.asyncio
@pytest.mark.parametrize("header", ["", "has space", "x" * 129, "naïve"])
async def test_a_request_id_header_that_is_not_an_id_gets_a_fresh_one(bus: EventBus, header: str) -> None:
    app = app_showing_request_id(bus)
    async with client(app) as http:
        first = (await http.get("/id", headers={"X-Request-ID": header.encode()})).json()
        second = (await http.get("/id", headers={"X-Request-ID": header.encode()})).json()
    assert len(first) == len(second) == 32
    assert first != second
    assert int(first, 16) >= 0


@pytest.mark.asyncio
async def test_a_sync_view_and_a_background_task_queue_too(bus: EventBus) -> None:
    app, _ = app_with(bus)
    order: list[str] = []
    bus.subscribe("e", lambda event: order.append(event.data["where"]))

    def later() -> None:
        publish_after_response(Event("e", {"where": "background task"}))

    @app.post("/sync")
    def create(tasks: BackgroundTasks) -> None:  # FastAPI runs it on a worker thread
        publish_after_response(Event("e", {"where": "sync view"}))
        tasks.add_task(later)

    async with client(app) as http:
        await http.post("/sync")
    assert await async_wait_until(lambda: len(order) == 2)
    assert order == ["sync view", "background task"]


@pytest.mark.asyncio
async def test_a_streaming_response_publishes_after_its_last_chunk(bus: EventBus) -> None:
    app, _ = app_with(bus)
    chunks_sent: list[int] = []
    at_receiver: list[int] = []
    bus.subscribe("streamed", lambda event: at_receiver.append(len(chunks_sent)))

    async def body() -> AsyncIterator[bytes]:
        for n in range(5):
            chunks_sent.append(n)
            await asyncio.sleep(0.01)
            yield b"chunk"

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        publish_after_response(Event("streamed"))
        return StreamingResponse(body())

    async with client(app) as http:
        assert (await http.get("/stream")).content == b"chunk" * 5
    assert await async_wait_until(lambda: at_receiver)
    assert at_receiver == [5]


@pytest.mark.asyncio
async def test_many_concurrent_requests_each_publish_once_in_their_own_context(bus: EventBus) -> None:
    app, events = app_with(bus)
    seen: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    @bus.subscribe("e")
    def record(event: Event) -> None:
        info = current_request()
        with lock:
            seen.append((event.data["n"], info.request_id if info else None))

    @app.post("/e/{n}")
    def create(n: int) -> None:  # sync: many worker threads queue at once
        for _ in range(2):
            publish_after_response(Event("e", {"n": n}))

    async with serving(app), client(app) as http:
        await asyncio.gather(*(http.post(f"/e/{n}", headers={"X-Request-ID": f"r{n}"}) for n in range(60)))
    assert sorted(seen) == sorted([(n, f"r{n}") for n in range(60)] * 2)
    assert events.stats() == {"queued": 120, "dropped": 0}


@pytest.mark.asyncio
async def test_a_full_queue_fails_the_future_and_not_the_response(new_bus: BusFactory, gate: threading.Event) -> None:
    bus = new_bus(queue_size=1, overflow="raise")
    app, _ = app_with(bus)
    bus.subscribe("e", lambda event: gate.wait(10))
    futures = []

    @app.post("/e")
    async def create() -> None:
        futures.extend(publish_after_response(Event("e")) for _ in range(3))

    async with client(app) as http:
        assert (await http.post("/e")).status_code == 200
    outcomes = [type(f.exception(timeout=0.5)) if f.done() else "pending" for f in futures]
    assert QueueFullError in outcomes
    assert bus.stats()["rejected"] >= 1
    gate.set()


@pytest.mark.asyncio
async def test_the_apps_own_lifespan_runs_inside_the_bus_start_and_drain(bus: EventBus) -> None:
    steps: list[str] = []
    bus.subscribe("bye", lambda event: (time.sleep(0.05), steps.append("bye delivered")))

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        steps.append("own startup")
        yield {"db": "connected"}
        steps.append("own shutdown")
        bus.publish_nowait(Event("bye"))

    app, events = app_with(bus, app_options={"lifespan": own})
    async with serving(app) as served:
        assert served.state == {"db": "connected"}
    steps.append(f"dropped {events.last_drain_dropped}")
    assert steps == ["own startup", "own shutdown", "bye delivered", "dropped 0"]


@pytest.mark.asyncio
async def test_a_failing_startup_of_the_app_still_shuts_the_bus_down(bus: EventBus) -> None:
    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[None]:
        raise OSError("database unreachable")
        yield

    app, events = app_with(bus, app_options={"lifespan": own})
    served = Served(app)
    message = await served.startup()
    assert message["type"] == "lifespan.startup.failed"
    assert "database unreachable" in message["message"]
    assert events.last_drain_dropped == 0


@pytest.mark.asyncio
async def test_bridges_start_with_the_app_and_stop_with_its_bus(bus: EventBus, redis_server: Any) -> None:
    from blinker_events.redis import RedisBridge

    bridge = RedisBridge(bus, redis_server.url, stream="asgi")
    app, _ = app_with(bus, bridges=[bridge])
    async with serving(app):
        assert bridge.running
    assert not bridge.running


@pytest.mark.asyncio
async def test_the_dependency_and_get_bus_give_the_apps_bus(bus: EventBus) -> None:
    app, _ = app_with(bus)
    found: list[EventBus] = []

    @app.get("/")
    async def view(events_bus: EventBusDep) -> None:
        found.extend([events_bus, get_bus()])

    async with client(app) as http:
        assert (await http.get("/")).status_code == 200
    assert found == [bus, bus]
    assert get_bus(app) is bus
    with pytest.raises(RuntimeError, match="not inside a request"):
        get_bus()
    with pytest.raises(RuntimeError, match="not installed"):
        get_bus(FastAPI())


@pytest.mark.asyncio
async def test_without_blinker_events_the_dependency_fails_naming_the_fix() -> None:
    app = FastAPI()

    @app.get("/")
    async def view(events_bus: EventBusDep) -> None: ...

    with pytest.raises(RuntimeError, match=r"call blinker_events.asgi.BlinkerEvents\(app\)"):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            await http.get("/")


@pytest.mark.asyncio
async def test_the_default_is_the_default_bus_and_a_plain_starlette_app_works() -> None:
    import blinker_events

    app = Starlette()
    events = BlinkerEvents(app)
    assert events.bus is blinker_events.default_bus
    assert get_bus(app) is blinker_events.default_bus


def test_publish_after_response_refuses_bad_arguments_and_calls_outside_a_request() -> None:
    with pytest.raises(TypeError, match="event must be an Event, not str"):
        publish_after_response("order.created")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        publish_after_response(Event("e"), timeout=-1)
    with pytest.raises(RuntimeError, match="outside a request"):
        publish_after_response(Event("e"))


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"bus": "bus"}, TypeError, "bus must be an EventBus or None, not str"),
        ({"drain_timeout": 0}, ValueError, "drain_timeout"),
        ({"start_timeout": "1"}, TypeError, "start_timeout"),
        ({"bridges": "redis"}, TypeError, "bridges must be an iterable"),
        ({"bridges": [object()]}, TypeError, "bridges: <object object at"),
        ({"request_id_header": 1}, TypeError, "request_id_header must be a str or None, not int"),
        ({"request_id_header": "x request"}, ValueError, "request_id_header must be a header name"),
        ({"request_id_header": "x:y"}, ValueError, "request_id_header must be a header name"),
        ({"request_id_header": "x(y)"}, ValueError, "request_id_header must be a header name"),
        ({"request_id_header": "a,b"}, ValueError, "request_id_header must be a header name"),
        ({"request_id_header": 'a"b'}, ValueError, "request_id_header must be a header name"),
        ({"request_id_header": "x/y"}, ValueError, "request_id_header must be a header name"),
        ({"request_id_header": ""}, ValueError, "request_id_header must be a header name"),
    ],
)
def test_bad_arguments_are_refused_naming_them_and_the_app_is_untouched(
    arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    app = FastAPI()
    with pytest.raises(error, match=message):
        BlinkerEvents(app, **arguments)
    assert app.user_middleware == []
    assert not hasattr(app.state, "blinker_events")


def test_get_bus_of_something_that_is_not_an_app_is_a_type_error_naming_app() -> None:
    with pytest.raises(TypeError, match="app must be a Starlette or FastAPI app or None, not str"):
        get_bus("my_app")  # type: ignore[arg-type]


def test_a_request_id_header_name_may_use_every_token_character(bus: EventBus) -> None:
    _, events = app_with(bus, request_id_header="X-Req_ID.v1!#$%&'*+^`|~")
    assert events._header == b"x-req_id.v1!#$%&'*+^`|~"


def test_an_app_gets_one_blinker_events_and_one_serves_one_app(bus: EventBus) -> None:
    app, events = app_with(bus)
    with pytest.raises(RuntimeError, match="already installed"):
        BlinkerEvents(app, bus=bus)
    with pytest.raises(RuntimeError, match="already serves an app"):
        events.init_app(FastAPI())
    with pytest.raises(TypeError, match="app must be a Starlette or FastAPI app, not function"):
        BlinkerEvents(lambda scope, receive, send: None)  # type: ignore[arg-type]
    stack = app.build_middleware_stack()  # the refused ones wrapped nothing: one layer of ours
    assert type(stack).__name__ == "_Middleware"
    assert type(stack.app).__name__ == "ServerErrorMiddleware"  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_websocket_passes_through_without_a_request(bus: EventBus) -> None:
    app, _ = app_with(bus)
    seen: list[RequestInfo | None] = []
    sent: list[dict[str, Any]] = []

    @app.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        seen.append(current_request())
        await websocket.close()

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "path": "/ws", "raw_path": b"/ws", "query_string": b"",
             "headers": [], "scheme": "ws", "server": ("t", 80), "client": ("127.0.0.1", 1),
             "root_path": ""}  # fmt: skip
    await app(scope, receive, send)
    assert seen == [None]
    assert sent[-1]["type"] == "websocket.close"


def http_scope(path: str = "/", method: str = "POST") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
            "raw_path": path.encode(), "query_string": b"", "headers": [], "scheme": "http", "server": ("t", 80),
            "client": ("127.0.0.1", 5000), "root_path": "", "state": {}}  # fmt: skip


@pytest.mark.asyncio
async def test_a_send_that_fails_on_the_last_message_still_publishes(bus: EventBus) -> None:
    app, events = app_with(bus)
    ran: list[Event] = []
    bus.subscribe("e", ran.append)

    @app.post("/")
    async def view() -> None:
        publish_after_response(Event("e"))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise OSError("connection reset by peer")  # the client left as the body went

    with pytest.raises(OSError, match="connection reset"):
        await app(http_scope(), receive, send)
    assert await async_wait_until(lambda: ran)
    assert events.stats() == {"queued": 1, "dropped": 0}


@pytest.mark.asyncio
@pytest.mark.parametrize("spec", ["2.0", "2.4"])
@pytest.mark.parametrize(("path", "failing"), [("/json", 1), ("/stream", 1), ("/stream", 2)])
async def test_a_send_that_fails_before_the_last_message_still_publishes(
    bus: EventBus, path: str, failing: int, spec: str
) -> None:
    # A server's send raises on a closed connection (as ASGI 2.4 asks): the
    # client left, and what the view did is done, whatever the app then
    # raises out of that send (OSError, or Starlette's ClientDisconnect).
    app, events = app_with(bus)
    ran: list[Event] = []
    bus.subscribe("e", ran.append)

    @app.get("/json")
    async def plain() -> dict[str, int]:
        publish_after_response(Event("e"))
        return {"n": 1}

    async def chunks() -> AsyncIterator[bytes]:
        yield b"one"
        yield b"two"

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        publish_after_response(Event("e"))
        return StreamingResponse(chunks())

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(10)  # no disconnect message: the send is how the server tells
        return {"type": "http.disconnect"}

    sent = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal sent
        sent += 1
        if sent == failing:
            raise OSError("connection lost")

    scope = {**http_scope(path, "GET"), "asgi": {"version": "3.0", "spec_version": spec}}
    # Older Starlette (0.37) raises the OSError inside an ExceptionGroup.
    with pytest.raises((OSError, ClientDisconnect, ExceptionGroup)):
        await app(scope, receive, send)
    assert await async_wait_until(lambda: ran)
    assert events.stats() == {"queued": 1, "dropped": 0}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("handled", "failing", "published"),
    [
        (True, "http.response.start", True),
        (True, "http.response.body", True),
        (False, "http.response.start", False),
    ],
    ids=["handler's response, start", "handler's response, body", "Starlette's own 500"],
)
async def test_a_send_that_fails_after_the_view_raised_publishes_only_a_response(
    bus: EventBus, handled: bool, failing: str, published: bool
) -> None:
    # A handler for 500 makes a response of what the view raised (the
    # table: published), and the client leaving during it does not undo
    # that; Starlette's own 500 for an error no handler took is no response,
    # and its send failing does not make the view's work done.
    async def on_500(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "sorry"}, status_code=500)

    app, events = app_with(bus, app_options={"exception_handlers": {500: on_500}} if handled else {})
    ran: list[Event] = []
    bus.subscribe("e", ran.append)

    @app.get("/")
    async def view() -> None:
        publish_after_response(Event("e"))
        raise RuntimeError("the view failed")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == failing:
            raise OSError("connection lost")

    with pytest.raises((OSError, RuntimeError)):
        await app(http_scope("/", "GET"), receive, send)
    if published:
        assert await async_wait_until(lambda: ran)
    assert events.stats() == {"queued": int(published), "dropped": int(not published)}
    assert len(ran) == int(published)


@pytest.mark.asyncio
async def test_a_client_disconnect_while_the_view_reads_the_body_still_publishes(bus: EventBus) -> None:
    app, events = app_with(bus)
    ran: list[Event] = []
    bus.subscribe("e", ran.append)

    @app.post("/")
    async def view(request: Request) -> None:
        publish_after_response(Event("e"))
        await request.body()

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None: ...

    with pytest.raises(ClientDisconnect):
        await app(http_scope(), receive, send)
    assert await async_wait_until(lambda: ran)
    assert events.stats() == {"queued": 1, "dropped": 0}


class Hostile(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.asyncio
async def test_an_exception_that_cannot_be_shown_still_drops_counted_and_logged(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    app, events = app_with(bus)
    futures = []

    @app.post("/")
    async def view() -> None:
        futures.append(publish_after_response(Event("e")))
        raise Hostile

    async with client(app) as http:
        assert (await http.post("/")).status_code == 500
    assert isinstance(futures[0].exception(timeout=5), EventSystemError)
    assert events.stats() == {"queued": 0, "dropped": 1}
    assert log_records(caplog, logging.WARNING, "the app raised Hostile: e")


@pytest.mark.asyncio
async def test_many_events_from_one_request_are_all_published_in_order(bus: EventBus) -> None:
    app, _ = app_with(bus)
    got: list[int] = []
    bus.subscribe("e", lambda event: got.append(event.data["n"]))

    @app.post("/")
    async def view() -> None:
        for n in range(3000):
            publish_after_response(Event("e", {"n": n, "blob": "x" * 1000}))

    async with serving(app), client(app) as http:
        assert (await http.post("/")).status_code == 200
    assert got == list(range(3000))


@pytest.mark.asyncio
async def test_a_timeout_given_to_publish_after_response_cuts_its_receivers(bus: EventBus) -> None:
    app, _ = app_with(bus)
    futures = []

    @bus.subscribe("e")
    async def slow(event: Event) -> None:
        await asyncio.sleep(30)

    @app.post("/")
    async def view() -> None:
        futures.append(publish_after_response(Event("e"), timeout=0.1))

    async with client(app) as http:
        await http.post("/")
    report = await asyncio.wrap_future(futures[0])
    assert report.finished or await async_wait_until(lambda: report.finished, timeout=5)
    assert [s.name for s in report.timed_out] == [bus.get_subscriptions("e")[0].name]


class RefusingBridge:
    """A bridge whose start fails (a second bridge on the same stream, say)."""

    def start(self, *, timeout: float | None = 10.0) -> bool:
        raise RuntimeError("this bus already has a running bridge")


@pytest.mark.asyncio
async def test_a_bridge_that_fails_to_start_fails_the_startup_and_the_bus_is_shut_down(bus: EventBus) -> None:
    app, events = app_with(bus, bridges=[RefusingBridge()])
    served = Served(app)
    message = await served.startup()
    assert message["type"] == "lifespan.startup.failed"
    assert "already has a running bridge" in message["message"]
    assert events.last_drain_dropped == 0  # shut down: its loop thread is not left running


@pytest.mark.asyncio
async def test_a_mounted_app_publishes_through_the_outer_apps_middleware(bus: EventBus) -> None:
    app, _ = app_with(bus)
    inner = FastAPI()
    app.mount("/api", inner)
    seen: list[tuple[str, RequestInfo | None]] = []
    bus.subscribe("e", lambda event: seen.append((event.data["path"], current_request())))

    @inner.post("/orders")
    async def create(events_bus: EventBusDep) -> None:
        assert events_bus is bus
        publish_after_response(Event("e", {"path": "/api/orders"}))

    async with client(app) as http:
        assert (await http.post("/api/orders", headers={"X-Request-ID": "m-1"})).status_code == 200
    assert await async_wait_until(lambda: seen)
    assert seen == [("/api/orders", RequestInfo("m-1", "POST", "/api/orders", ("127.0.0.1", 123)))]


@pytest.mark.asyncio
async def test_a_base_http_middleware_of_the_app_between_keeps_the_order_and_the_context(bus: EventBus) -> None:
    from starlette.middleware.base import BaseHTTPMiddleware

    sent: list[str] = []
    at_receiver: list[list[str]] = []

    async def tag(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-tag"] = "1"
        return response

    app = FastAPI()
    app.add_middleware(BaseHTTPMiddleware, dispatch=tag)  # the app's own: inside BlinkerEvents'
    BlinkerEvents(app, bus=bus)
    bus.subscribe("e", lambda event: at_receiver.append(list(sent)))

    @app.post("/")
    async def view() -> None:
        publish_after_response(Event("e"))

    # As a server does: the request's body, then nothing until the response
    # is complete, then a disconnect (Starlette 0.37's BaseHTTPMiddleware
    # listens for it, and refuses a second http.request).
    requests = [{"type": "http.request", "body": b"", "more_body": False}]
    complete = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            complete.set()

    await app(http_scope(), receive, send)
    assert await async_wait_until(lambda: at_receiver)
    assert at_receiver == [["http.response.start", "http.response.body", "http.response.body"]]


@pytest.mark.asyncio
async def test_blinker_events_on_an_app_that_has_started_is_refused_and_changes_nothing(bus: EventBus) -> None:
    app = FastAPI()

    @app.get("/")
    async def view() -> None: ...

    async with client(app) as http:
        await http.get("/")  # the app builds its middleware stack
    with pytest.raises(RuntimeError, match="after the app has started"):
        BlinkerEvents(app, bus=bus)
    assert not hasattr(app.state, "blinker_events")


@pytest.mark.asyncio
async def test_a_huge_request_id_header_is_replaced_quickly(bus: EventBus) -> None:
    app = app_showing_request_id(bus)
    async with client(app) as http:
        started = time.monotonic()
        answer = await http.get("/id", headers={"X-Request-ID": "a" * 1_000_000})
    assert time.monotonic() - started < 5
    assert len(answer.json()) == 32


@pytest.mark.asyncio
async def test_a_caller_cancelling_the_future_neither_fails_the_response_nor_withdraws_the_event(
    bus: EventBus,
) -> None:
    app, _ = app_with(bus)
    ran: list[Event] = []
    bus.subscribe("e", ran.append)
    cancelled: list[bool] = []

    @app.post("/")
    async def view() -> None:
        future = publish_after_response(Event("e"))
        cancelled.append(future.cancel())

    async with client(app) as http:
        assert (await http.post("/")).status_code == 200
    assert cancelled == [False]
    assert await async_wait_until(lambda: ran)


@pytest.mark.asyncio
async def test_the_drop_log_line_of_many_events_names_the_first_few(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    app, events = app_with(bus)

    @app.post("/")
    async def view() -> None:
        for n in range(1000):
            publish_after_response(Event(f"type.{n}"))
        raise LookupError("gone")

    async with client(app) as http:
        assert (await http.post("/")).status_code == 500
    assert events.stats() == {"queued": 0, "dropped": 1000}
    (record,) = log_records(caplog, logging.WARNING, "1000 event(s) queued")
    assert record.getMessage().endswith(
        "the app raised LookupError: type.0, type.1, type.2, type.3, type.4 and 995 more"
    )
