"""Receivers, imported at startup by ``blinker_events.django`` (like ``admin.py``).

- ``orders.order_placed`` is published by the views (``publish_on_commit``
  from the sync view, ``await publish`` from the async one).
- ``orders.order_saved`` is Order's ``post_save``, bridged in settings.
"""

import asyncio
import logging

from blinker_events import Event, subscribe

from .models import Order, Receipt

logger = logging.getLogger(__name__)


@subscribe("orders.order_placed")
def write_receipt(event: Event) -> None:
    """Sync and using the ORM: from the async view it runs on asgiref's
    thread-sensitive executor, so no SynchronousOnlyOperation."""
    order = Order.objects.get(pk=event.data["order_id"])
    Receipt.objects.create(order=order, text=f"receipt for {order}")


@subscribe("orders.order_placed")
async def notify_warehouse(event: Event) -> None:
    """Async: awaited by ``await publish``; run on the bus loop after ``publish_sync``."""
    await asyncio.sleep(0.01)
    logger.info("warehouse notified of order %s", event.data["order_id"])


@subscribe("orders.order_saved")
def audit(event: Event) -> None:
    """The bridged post_save: ``event.data["instance"]`` is the Order, ``event.source`` the model class."""
    logger.info("saved %s (created=%s)", event.data["instance"], event.data["created"])
