"""Django integration: configure the default bus from settings, discover
receivers, bridge Django signals and publish on commit.

::

    # settings.py
    INSTALLED_APPS = [..., "blinker_events.django", "orders"]
    BLINKER_EVENTS = {
        "TIMEOUT": 5.0,
        "SIGNALS": [
            {"signal": "django.db.models.signals.post_save", "sender": "orders.Order",
             "event_type": "orders.order_saved"},
        ],
    }

    # orders/events.py -- imported at startup, like admin.py
    from blinker_events import subscribe

    @subscribe("orders.order_saved")
    def audit(event): ...

    # orders/views.py
    from blinker_events import Event
    from blinker_events.django import publish_on_commit

    with transaction.atomic():
        order = Order.objects.create(...)
        publish_on_commit(Event("orders.order_placed", {"id": order.pk}, "orders"))

What the app does (its ``AppConfig`` is ``blinker_events.django.apps.BlinkerEventsConfig``):

- **Settings.** ``settings.BLINKER_EVENTS`` (a dict; every key optional,
  see :data:`DEFAULTS`) configures :data:`blinker_events.default_bus` at
  startup and again whenever the setting changes (``override_settings``,
  pytest-django's ``settings`` fixture): leaving the override applies the
  previous values again. Bad values raise TypeError/ValueError naming the
  key, before anything changes.
- **Autodiscovery.** At ``ready()`` the module named by ``AUTODISCOVER``
  (default ``"events"``) of every installed app is imported, so the
  ``@subscribe`` receivers in it are subscribed. Python imports a module
  once, and the bus returns the existing subscription when the same
  function is subscribed again with the same options, so neither a second
  ``ready()`` nor a second discovery adds a receiver.
- **Django signals.** Each entry of ``SIGNALS`` connects a relay to a Django
  signal: each send becomes ``Event(event_type, kwargs, sender)`` published
  with ``publish_sync`` on the default bus (so sync receivers run in the
  sender's thread, transaction and request), with every guard; the relay
  never raises into Django's ``send``.
- **Threads.** ``SYNC_EXECUTOR`` defaults to ``"thread_sensitive"``: sync
  receivers of ``await publish()`` run on asgiref's thread-sensitive
  executor -- the thread (and DB connection) of the request's sync code --
  so they may use the ORM from async views.
- **Database connections.** Deliveries on the bus's threads get a
  request's connection hygiene (``close_old_connections()`` before and
  after, honouring ``CONN_MAX_AGE``) for the connections they open; see
  the Django page of the docs.
"""

from __future__ import annotations

from ._on_commit import publish_on_commit
from ._settings import DEFAULTS, SETTING_NAME, apply_settings, autodiscover, signal_event_type

__all__ = ["DEFAULTS", "SETTING_NAME", "apply_settings", "autodiscover", "publish_on_commit", "signal_event_type"]
