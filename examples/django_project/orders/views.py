"""A sync view and an async view publishing ``orders.order_placed``, and
/events: the recent history as a table and as the event flow (an inline
SVG drawn on the server, and its Mermaid text)."""

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

import blinker_events
from blinker_events import Event
from blinker_events.django import publish_on_commit
from blinker_events.flow import to_mermaid, to_svg

from .models import Order


def _item(request: HttpRequest) -> str:
    return request.POST.get("item") or request.GET.get("item") or "widget"


def place_order(request: HttpRequest) -> JsonResponse:
    """Sync view: the event is published once the transaction commits."""
    with transaction.atomic():
        order = Order.objects.create(item=_item(request))  # post_save -> orders.order_saved
        publish_on_commit(Event("orders.order_placed", {"order_id": order.pk}, "orders.sync_view"))
    return JsonResponse({"order_id": order.pk, "receipts": order.receipts.count()}, status=201)


async def place_order_async(request: HttpRequest) -> JsonResponse:
    """Async view: ``await publish`` runs the sync receivers on the thread-sensitive executor."""
    order = await Order.objects.acreate(item=_item(request))
    report = await blinker_events.publish(Event("orders.order_placed", {"order_id": order.pk}, "orders.async_view"))
    return JsonResponse(
        {
            "order_id": order.pk,
            "receipts": await order.receipts.acount(),
            "delivered": len(report.succeeded),
            "failed": len(report.failed),
            "timed_out": len(report.timed_out),
        },
        status=201,
    )


def recent_events(request: HttpRequest) -> HttpResponse:
    """A debug page: the default bus's recent history, newest first."""
    history = blinker_events.get_delivery_reports()
    reports = reversed(history[-50:])
    rows = format_html_join(
        "\n",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                blinker_events.event_type_name(r.event.event_type),
                repr(r.event.source),
                len(r.succeeded),
                len(r.failed),
                len(r.timed_out),
                f"{r.duration * 1000:.1f}",
            )
            for r in reports
        ),
    )
    return HttpResponse(
        format_html(
            "<!doctype html><title>Recent events</title><h1>Recent events</h1>"
            "<table><tr><th>type</th><th>source</th><th>ok</th><th>failed</th><th>timed out</th><th>ms</th></tr>"
            '{}</table><h2>Event flow</h2><div id="flow">{}</div><pre id="flow-mermaid">{}</pre>',
            rows,
            # to_svg escapes every label itself: its output is safe to inline as it is.
            mark_safe(to_svg(history, max_nodes=150, title="Event flow of the recent history")),
            to_mermaid(history, max_nodes=150),  # escaped by format_html
        )
    )
