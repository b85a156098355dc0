"""A small orders app on blinker_events' Flask extension.

Run it from the repository root (after ``python3 dev.py test`` made the venv)::

    .venv-py3.11/bin/python -m examples.flask_app      # http://127.0.0.1:5000/events

What it shows:

- ``POST /orders`` (a sync view) and ``POST /orders/async`` (an async view)
  publish ``order.created``: ``current_events.publish_sync(...)`` and
  ``await current_events.publish(...)``. Both answer 201 with the delivery
  report as JSON (a form post redirects to ``/events``).
- ``reserve_stock`` (sync) reads ``current_app`` wherever it runs: inline in
  the request for the sync view, on a bus thread -- with the app context the
  extension pushes there -- for the async view. It publishes
  ``stock.reserved`` in turn, which ``check_restock`` receives: a nested
  event, which the history page draws under the receiver that published it.
- ``notify_customer`` (async) talks to a slow "SMS gateway": for odd order
  numbers it takes ``NOTIFY_SLOW_SECONDS`` (2 s), and the bus timeout
  (``BLINKER_EVENTS_TIMEOUT``, 0.5 s) cancels it; the response is not held
  up longer than that. Even orders succeed, which resets its failure count,
  so it is never disabled.
- ``sync_to_crm`` always fails; after ``BLINKER_EVENTS_FAILURE_THRESHOLD`` (3)
  consecutive failures the bus disables it and announces that with a
  ``SUBSCRIBER_DISABLED`` event, which ``log_disabled`` logs.
- Flask's own ``request_finished`` is bridged (``BLINKER_EVENTS_FLASK_SIGNALS``)
  as ``flask.request_finished``; ``count_status`` tallies the status codes.
- ``GET /events`` lists the recent history as an HTML table, every
  subscription with its failure count, and the event flow: the history's
  causal trees as an inline SVG (``blinker_events.flow.to_svg``, rendered on
  the server, no JavaScript) and as Mermaid text.
- ``GET /orders/stream`` streams each ``order.created`` to the browser as
  server-sent events (``bus.stream``), once its receivers ran; ``?limit=N``
  ends the stream after N orders. Try ``curl -N http://127.0.0.1:5000/orders/stream``
  while placing orders.

Try: ``curl -X POST -H 'Content-Type: application/json' -d '{"item": "tea", "quantity": 2}'
http://127.0.0.1:5000/orders``, or use the buttons on ``/events``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, render_template_string, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from blinker_events import DeliveryReport, Event, EventStream, EventTimeoutError, SystemEventType, event_type_name
from blinker_events.flask import BlinkerEvents, current_events, get_bus
from blinker_events.flow import to_mermaid, to_svg

ORDER_CREATED = "order.created"
STOCK_RESERVED = "stock.reserved"

events = BlinkerEvents()
orders = Blueprint("orders", __name__)
log = logging.getLogger("examples.flask_app")


class OrderBook:
    """The app's in-memory orders, and what its receivers did with them."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.orders: list[dict[str, Any]] = []
        self.reserved: list[int] = []
        self.restock_checked: list[int] = []
        self.notified: list[int] = []
        self.statuses: Counter[int] = Counter()

    def add(self, item: str, quantity: int) -> dict[str, Any]:
        with self._lock:
            order = {"id": next(self._ids), "item": item, "quantity": quantity}
            self.orders.append(order)
        return order


def book() -> OrderBook:
    found = current_app.extensions["orders_example"]
    assert isinstance(found, OrderBook)
    return found


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The app factory: each call makes an app with a bus of its own."""
    app = Flask(__name__)
    app.config.from_mapping(
        # Its receivers keep per-app state and its page shows the app's own
        # history, and the tests make many apps in one process: so a bus per
        # app, not the default bus module-level @subscribe receivers are on.
        BLINKER_EVENTS_OWN_BUS=True,
        BLINKER_EVENTS_TIMEOUT=0.5,
        BLINKER_EVENTS_FAILURE_THRESHOLD=3,
        BLINKER_EVENTS_HISTORY_SIZE=200,
        BLINKER_EVENTS_FLASK_SIGNALS=["request_finished"],
        # Receiver errors are in the reports and the log, never in a
        # response -- even under app.testing, where the default is to raise.
        BLINKER_EVENTS_PROPAGATE_EXCEPTIONS=False,
        NOTIFY_SLOW_SECONDS=2.0,
    )
    if config:
        app.config.update(config)
    app.extensions["orders_example"] = OrderBook()
    events.init_app(app)

    bus = get_bus(app)
    bus.subscribe(ORDER_CREATED, reserve_stock)
    bus.subscribe(ORDER_CREATED, notify_customer)
    bus.subscribe(ORDER_CREATED, sync_to_crm)
    bus.subscribe(STOCK_RESERVED, check_restock)
    bus.subscribe(SystemEventType.SUBSCRIBER_DISABLED, log_disabled)
    bus.subscribe("flask.request_finished", count_status)

    app.register_blueprint(orders)
    return app


# -- receivers ---------------------------------------------------------------


def reserve_stock(event: Event) -> None:
    """Sync; uses the app context wherever the bus runs it, and publishes
    ``stock.reserved`` from inside its handling (a nested event)."""
    book().reserved.append(event.data["id"])
    current_events.publish_sync(Event(STOCK_RESERVED, {"order": event.data["id"], "item": event.data["item"]}, "stock"))


def check_restock(event: Event) -> None:
    """Sync; receives the nested ``stock.reserved``."""
    book().restock_checked.append(event.data["order"])


async def notify_customer(event: Event) -> None:
    """Async; the "SMS gateway" is slow for odd order numbers."""
    if event.data["id"] % 2:
        await asyncio.sleep(current_app.config["NOTIFY_SLOW_SECONDS"])
    book().notified.append(event.data["id"])


def sync_to_crm(event: Event) -> None:
    """Always fails: auto-disabled after the failure threshold."""
    raise ConnectionError(f"CRM unreachable, order {event.data['id']} not synced")


def log_disabled(event: Event) -> None:
    log.warning("receiver %s disabled after %d failures", event.data["receiver"], event.data["failures"])


def count_status(event: Event) -> None:
    """Bridged Flask signal: ``event.source`` is the app, ``event.data["response"]`` the response."""
    book().statuses[event.data["response"].status_code] += 1


# -- views -------------------------------------------------------------------


def _new_order() -> dict[str, Any]:
    data: Mapping[str, Any] = request.get_json(silent=True) or request.form
    try:
        quantity = int(data.get("quantity", 1))
    except (TypeError, ValueError):
        quantity = 1
    return book().add(str(data.get("item", "tea")), quantity)


def _answer(order: dict[str, Any], report: DeliveryReport) -> ResponseReturnValue:
    if request.form:  # the buttons on /events
        return redirect(url_for("orders.list_events"), 303)
    return jsonify(order=order, delivery=_summary(report)), 201


@orders.post("/orders")
def create_order() -> ResponseReturnValue:
    order = _new_order()
    report = current_events.publish_sync(Event(ORDER_CREATED, order, request.path))
    return _answer(order, report)


@orders.post("/orders/async")
async def create_order_async() -> ResponseReturnValue:
    order = _new_order()
    report = await current_events.publish(Event(ORDER_CREATED, order, request.path))
    return _answer(order, report)


@orders.get("/orders/stream")
def stream_orders() -> ResponseReturnValue:
    """Server-sent events: one ``order`` message per ``order.created``."""
    limit = request.args.get("limit", type=int)
    # Made in the view, not in the generator: it observes from now on, so
    # an order placed before the client reads its first message is kept
    # for it (up to 100 waiting; beyond that the oldest is dropped, counted,
    # and the client told with a "dropped" message).
    events = get_bus().stream(ORDER_CREATED, maxsize=100, timeout=15.0)
    response = Response(_messages(events, limit), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
    response.call_on_close(events.close)  # the client went away, or the stream ended
    return response


def _messages(events: EventStream, limit: int | None) -> Iterator[str]:
    yield ": connected\n\n"
    sent = dropped = 0
    while limit is None or sent < limit:
        try:
            event = next(events)
        except EventTimeoutError:  # nothing for 15 s: keep proxies from closing the connection
            yield ": keep-alive\n\n"
            continue
        except StopIteration:  # closed
            return
        if events.dropped != dropped:
            yield f"event: dropped\ndata: {events.dropped - dropped}\n\n"
            dropped = events.dropped
        yield f"id: {event.event_id}\nevent: order\ndata: {json.dumps(dict(event.data))}\n\n"
        sent += 1


@orders.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("orders.list_events"))


@orders.get("/events")
def list_events() -> ResponseReturnValue:
    reports = current_events.get_delivery_reports(limit=50)[::-1]  # newest first
    rows = [
        {
            "time": r.event.timestamp.strftime("%H:%M:%S.%f")[:-3],
            "type": event_type_name(r.event.event_type),
            "source": _source(r.event.source),
            "succeeded": len(r.succeeded),
            "failed": len(r.failed),
            "timed_out": len(r.timed_out),
            "skipped": len(r.skipped),
            "ms": f"{r.duration * 1000:.1f}",
            "details": "; ".join(f"{k}: {', '.join(v)}" for k, v in _summary(r).items() if v),
        }
        for r in reports
    ]
    subscriptions = [
        {
            "receiver": _short(s.name),
            "event_type": "*" if s.event_type is None else event_type_name(s.event_type),
            "failures": s.failures,
            "disabled": s.disabled,
        }
        for s in current_events.get_subscriptions()
    ]
    history = current_events.get_delivery_reports()
    return render_template_string(
        PAGE,
        rows=rows,
        subscriptions=subscriptions,
        statuses=dict(book().statuses),
        # to_svg escapes every label itself: its output is safe to inline as it is.
        flow_svg=Markup(to_svg(history, max_nodes=150, title="Event flow of the recent history")),
        flow_mermaid=to_mermaid(history, max_nodes=150),
    )


def _summary(report: DeliveryReport) -> dict[str, list[str]]:
    return {
        "succeeded": [_short(s.name) for s in report.succeeded],
        "failed": [f"{_short(s.name)} ({type(e).__name__})" for s, e in report.failed],
        "timed_out": [_short(s.name) for s in report.timed_out],
        "skipped": [f"{_short(s.name)} ({reason})" for s, reason, _ in report.skipped],
        "disabled": [_short(s.name) for s in report.disabled],
    }


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _source(source: Any) -> str:
    return f"app {source.name}" if isinstance(source, Flask) else str(source)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>blinker_events: recent events</title>
<style>
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; font-size: .9em; }
td.n { text-align: right; }
tr.bad td { background: #fee; }
</style></head>
<body>
<h1>Recent events</h1>
<form method="post" action="{{ url_for('orders.create_order') }}" style="display:inline">
  <input name="item" value="tea"> <input name="quantity" value="1" size="3">
  <button>POST /orders</button></form>
<form method="post" action="{{ url_for('orders.create_order_async') }}" style="display:inline">
  <input type="hidden" name="item" value="coffee"><button>POST /orders/async</button></form>
<table id="events">
<tr><th>time (UTC)</th><th>type</th><th>source</th><th>succeeded</th><th>failed</th><th>timed out</th>
<th>skipped</th><th>ms</th><th>details</th></tr>
{% for row in rows %}
<tr class="{{ 'bad' if row.failed or row.timed_out else '' }}">
<td>{{ row.time }}</td><td>{{ row.type }}</td><td>{{ row.source }}</td><td class="n">{{ row.succeeded }}</td>
<td class="n">{{ row.failed }}</td><td class="n">{{ row.timed_out }}</td><td class="n">{{ row.skipped }}</td>
<td class="n">{{ row.ms }}</td><td>{{ row.details }}</td></tr>
{% else %}
<tr><td colspan="9">nothing published yet</td></tr>
{% endfor %}
</table>
<h2>Subscriptions</h2>
<table id="subscriptions">
<tr><th>receiver</th><th>event type</th><th>consecutive failures</th><th>disabled</th></tr>
{% for s in subscriptions %}
<tr class="{{ 'bad' if s.disabled else '' }}"><td>{{ s.receiver }}</td><td>{{ s.event_type }}</td>
<td class="n">{{ s.failures }}</td><td>{{ 'yes' if s.disabled else 'no' }}</td></tr>
{% endfor %}
</table>
<p>Responses by status (bridged <code>request_finished</code>): {{ statuses }}</p>
<h2>Event flow</h2>
<p>Each event, the receivers it reached (green: ok, red: failed, orange: timed out, grey: skipped or
cancelled) and the events they published in turn; oldest first.</p>
<div id="flow" style="overflow-x: auto">{{ flow_svg }}</div>
<h3>As Mermaid</h3>
<pre id="flow-mermaid">{{ flow_mermaid }}</pre>
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.flask_app", description="The orders example app.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--debug", action="store_true", help="Flask's debug mode, with the reloader")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    create_app().run(host=args.host, port=args.port, debug=args.debug)
    return 0


if __name__ == "__main__":
    sys.exit(main())
