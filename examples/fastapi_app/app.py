"""A small orders app on FastAPI with blinker_events' ASGI integration.

Run it from the repository root::

    python3 dev.py fastapi-example            # http://127.0.0.1:8001/history
    .venv-py3.11/bin/python -m examples.fastapi_app --port 8002

What it shows:

- ``POST /orders`` (JSON ``{"item": "tea", "quantity": 2}``) answers 201 at
  once and publishes ``order.created`` *after* the response has gone out
  (``publish_after_response``): the client never waits for a receiver.
- ``reserve_stock`` (sync) runs on the bus's worker thread, never on the
  event loop, and reads the request's id with ``current_request()``.
- ``notify_customer`` (async) talks to a slow "SMS gateway": for bulk
  orders (a quantity of 10 or more) it takes ``--notify-slow`` seconds
  (2 s), and the bus timeout (0.5 s) cuts it; the others succeed, which
  resets its failure count (three bulk orders in a row disable it too).
- ``sync_to_crm`` always fails; after 3 consecutive failures the bus
  disables it and announces that with a ``SUBSCRIBER_DISABLED`` event,
  which ``log_disabled`` logs.
- ``GET /history`` lists the recent history as an HTML table, and every
  subscription with its failure count (``/history.json``: the same as JSON;
  ``GET /orders``: what the receivers did).
- Stopping the server (Ctrl-C, SIGTERM) lets uvicorn finish the requests in
  flight, then the lifespan drains the bus: every queued ``order.created``
  is delivered (within ``--drain-timeout`` seconds), and its log line says
  how many were dropped. ``--ledger FILE`` makes ``reserve_stock`` append
  each order to a file (``--ledger-delay`` seconds each), to check that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import itertools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from blinker_events import DeliveryReport, Event, EventBus, SystemEventType, event_type_name
from blinker_events.asgi import BlinkerEvents, current_request, publish_after_response
from blinker_events.fastapi import EventBusDep

ORDER_CREATED = "order.created"
#: From this quantity on, the SMS gateway is slow.
BULK = 10
log = logging.getLogger("examples.fastapi_app")


class NewOrder(BaseModel):
    item: str = Field("tea", max_length=200)
    quantity: int = Field(1, ge=1, le=1000)


class OrderBook:
    """The app's in-memory orders, and what its receivers did with them."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.orders: list[dict[str, Any]] = []
        self.reserved: list[dict[str, Any]] = []
        self.notified: list[int] = []

    def add(self, item: str, quantity: int) -> dict[str, Any]:
        with self._lock:
            order = {"id": next(self._ids), "item": item, "quantity": quantity}
            self.orders.append(order)
        return order


def create_app(
    *, notify_slow: float = 2.0, ledger: Path | None = None, ledger_delay: float = 0.0, drain_timeout: float = 10.0
) -> FastAPI:
    """The orders app, with a bus of its own (the tests make several)."""
    bus = EventBus(name="fastapi-example", timeout=0.5, failure_threshold=3, history_size=200)
    book = OrderBook()
    app = FastAPI(title="blinker_events FastAPI example")
    app.state.orders = book
    events = BlinkerEvents(app, bus=bus, drain_timeout=drain_timeout)

    # -- receivers -----------------------------------------------------------

    @bus.subscribe(ORDER_CREATED)
    def reserve_stock(event: Event) -> None:
        """Sync: on the worker thread, after the response; sees the request's id."""
        info = current_request()
        book.reserved.append({"id": event.data["id"], "request_id": info.request_id if info else None})
        if ledger is not None:
            time.sleep(ledger_delay)  # a slow warehouse: events pile up in the queue
            with ledger.open("a", encoding="utf-8") as file:
                file.write(f"{event.data['id']}\n")

    @bus.subscribe(ORDER_CREATED)
    async def notify_customer(event: Event) -> None:
        """Async: on the bus loop thread; the "SMS gateway" is slow for bulk orders."""
        if event.data["quantity"] >= BULK:
            await asyncio.sleep(notify_slow)
        book.notified.append(event.data["id"])

    @bus.subscribe(ORDER_CREATED)
    def sync_to_crm(event: Event) -> None:
        """Always fails: auto-disabled after the failure threshold."""
        raise ConnectionError(f"CRM unreachable, order {event.data['id']} not synced")

    @bus.subscribe(SystemEventType.SUBSCRIBER_DISABLED)
    def log_disabled(event: Event) -> None:
        log.warning("receiver %s disabled after %d failures", event.data["receiver"], event.data["failures"])

    # -- views ---------------------------------------------------------------

    @app.post("/orders", status_code=201)
    async def create_order(new: NewOrder) -> dict[str, Any]:
        order = book.add(new.item, new.quantity)
        publish_after_response(Event(ORDER_CREATED, order, "POST /orders"))
        info = current_request()
        return {"order": order, "request_id": info.request_id if info else None}

    @app.get("/orders")
    async def list_orders() -> dict[str, Any]:
        return {"orders": book.orders, "reserved": book.reserved, "notified": book.notified}

    @app.get("/")
    async def index() -> RedirectResponse:
        return RedirectResponse("/history")

    @app.get("/history.json")
    async def history_json(bus: EventBusDep) -> dict[str, Any]:
        return {"events": _rows(bus), "subscriptions": _subscriptions(bus), "drain": events.stats()}

    @app.get("/history", response_class=HTMLResponse)
    async def history(bus: EventBusDep) -> str:
        return _page(_rows(bus), _subscriptions(bus))

    return app


# -- the history page ----------------------------------------------------------


def _rows(bus: EventBus) -> list[dict[str, Any]]:
    return [
        {
            "time": r.event.timestamp.strftime("%H:%M:%S.%f")[:-3],
            "type": event_type_name(r.event.event_type),
            "source": str(r.event.source),
            "order": r.event.data.get("id"),
            **_summary(r),
            "ms": round(r.duration * 1000, 1),
        }
        for r in bus.get_delivery_reports(limit=50)[::-1]  # newest first
    ]


def _summary(report: DeliveryReport) -> dict[str, list[str]]:
    return {
        "succeeded": [_short(s.name) for s in report.succeeded],
        "failed": [f"{_short(s.name)} ({type(e).__name__})" for s, e in report.failed],
        "timed_out": [_short(s.name) for s in report.timed_out],
        "disabled": [_short(s.name) for s in report.disabled],
    }


def _subscriptions(bus: EventBus) -> list[dict[str, Any]]:
    return [
        {
            "receiver": _short(s.name),
            "event_type": "*" if s.event_type is None else event_type_name(s.event_type),
            "failures": s.failures,
            "disabled": s.disabled,
        }
        for s in bus.get_subscriptions()
    ]


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _page(rows: list[dict[str, Any]], subscriptions: list[dict[str, Any]]) -> str:
    def cells(values: list[Any], tag: str = "td") -> str:
        return "".join(f"<{tag}>{html.escape(', '.join(v) if isinstance(v, list) else str(v))}</{tag}>" for v in values)

    keys = ["time", "type", "source", "order", "succeeded", "failed", "timed_out", "disabled", "ms"]
    events = "".join(
        f'<tr class="{"bad" if r["failed"] or r["timed_out"] else ""}">{cells([r[k] for k in keys])}</tr>' for r in rows
    )
    subs = "".join(f"<tr>{cells(list(s.values()))}</tr>" for s in subscriptions)
    heads = cells(["time (UTC)", "type", "source", "order", "succeeded", "failed", "timed out", "disabled", "ms"], "th")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>blinker_events: recent events</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
th, td {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; font-size: .9em; }}
tr.bad td {{ background: #fee; }}
</style></head>
<body>
<h1>Recent events</h1>
<script>
function order(quantity) {{
  fetch("/orders", {{method: "POST", headers: {{"Content-Type": "application/json"}},
    body: JSON.stringify({{item: "tea", quantity: quantity}})}}).then(() => setTimeout(() => location.reload(), 700));
}}
</script>
<p><button onclick="order(1)">POST /orders</button> <button onclick="order(12)">POST a bulk order (slow SMS)</button>
(the page reloads once the receivers had time to run)</p>
<table id="events"><tr>{heads}</tr>
{events}</table>
<h2>Subscriptions</h2>
<table id="subscriptions"><tr>{cells(["receiver", "event type", "failures", "disabled"], "th")}</tr>
{subs}</table>
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.fastapi_app", description="The orders example app.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--notify-slow", type=float, default=2.0, help="seconds the SMS gateway takes for bulk orders")
    parser.add_argument("--ledger", type=Path, help="a file reserve_stock appends each order's id to")
    parser.add_argument("--ledger-delay", type=float, default=0.0, help="seconds reserve_stock takes per order")
    parser.add_argument("--drain-timeout", type=float, default=10.0, help="seconds the bus may drain at shutdown")
    args = parser.parse_args(argv)
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(
        notify_slow=args.notify_slow,
        ledger=args.ledger,
        ledger_delay=args.ledger_delay,
        drain_timeout=args.drain_timeout,
    )
    print(f"blinker_events FastAPI example on http://{args.host}:{args.port}/history", flush=True)
    # On SIGTERM or SIGINT uvicorn finishes the requests in flight, runs the
    # lifespan's shutdown (the bus drains; its log line says what was
    # dropped), then raises the signal again: SIGTERM then ends the process;
    # uvicorn takes the KeyboardInterrupt of SIGINT (older ones do not: here).
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
