"""The Flask example's server-sent-events endpoint (``bus.stream`` in a
streaming response), through Flask's real test client."""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Iterator

import pytest

pytest.importorskip("flask")

from flask import Flask

from blinker_events import lowlevel
from blinker_events.flask import get_bus
from examples.flask_app import create_app
from examples.flask_app.app import events as extension


@pytest.fixture
def app() -> Iterator[Flask]:
    app = create_app({"TESTING": True, "NOTIFY_SLOW_SECONDS": 0.0})
    yield app
    extension.shutdown_app(app)


def messages(body: bytes) -> list[tuple[str, str]]:
    """``(event, data)`` of each message of a text/event-stream body."""
    found = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            found.append((fields.get("event", "message"), fields["data"]))
    return found


def test_orders_placed_after_connecting_are_streamed_as_server_sent_events(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/orders/stream?limit=2", buffered=False)
    assert response.mimetype == "text/event-stream"
    # Placed before the client reads anything: the stream, made in the
    # view, has them already.
    client.post("/orders", json={"item": "tea", "quantity": 2})
    client.post("/orders/async", json={"item": "coffee"})
    body = b"".join(response.response)  # type: ignore[arg-type]
    response.close()
    got = [(kind, json.loads(data)) for kind, data in messages(body)]
    assert got == [
        ("order", {"id": 1, "item": "tea", "quantity": 2}),
        ("order", {"id": 2, "item": "coffee", "quantity": 1}),
    ]
    assert lowlevel.observers(get_bus(app)) == ()


def test_an_order_placed_from_another_thread_reaches_a_waiting_client(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/orders/stream?limit=1", buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b": connected\n\n"
    threading.Timer(0.05, lambda: app.test_client().post("/orders", json={"item": "jam"})).start()
    assert messages(next(chunks)) == [("order", json.dumps({"id": 1, "item": "jam", "quantity": 1}))]
    response.close()


def test_a_client_that_disconnects_stops_the_stream(app: Flask) -> None:
    response = app.test_client().get("/orders/stream", buffered=False)
    assert len(lowlevel.observers(get_bus(app))) == 1
    response.close()
    gc.collect()
    assert lowlevel.observers(get_bus(app)) == ()


def test_a_slow_client_is_told_what_was_dropped(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/orders/stream?limit=1", buffered=False)
    for n in range(105):
        client.post("/orders", json={"item": f"item {n}"})
    body = b"".join(response.response)  # type: ignore[arg-type]
    response.close()
    (dropped, order) = messages(body)
    assert dropped == ("dropped", "5")
    assert json.loads(order[1])["id"] == 6
