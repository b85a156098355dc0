"""Django integration: add ``"blinker_events.django"`` to ``INSTALLED_APPS``.

At startup the app configures :data:`blinker_events.default_bus` from
``settings.BLINKER_EVENTS`` (a dict, every key optional: :data:`DEFAULTS`),
imports each installed app's ``events`` module so that the ``@subscribe``
receivers in it are subscribed, and relays the Django signals named in
``SIGNALS`` onto the bus. Sync receivers of ``await publish`` run on
asgiref's thread-sensitive executor, so they may use the ORM from async
views, and deliveries on the bus's threads get a request's database
connection handling. :func:`publish_on_commit` publishes an event once the
current transaction commits.

The guide -- settings, receivers modules, Django's signals, what runs on
which thread, tests -- is the Django page of the documentation:
https://blinker-events.readthedocs.io/en/latest/django.html (``docs/django.md``).
"""

from __future__ import annotations

from ._on_commit import publish_on_commit
from ._settings import DEFAULTS, SETTING_NAME, apply_settings, autodiscover, signal_event_type

__all__ = ["DEFAULTS", "SETTING_NAME", "apply_settings", "autodiscover", "publish_on_commit", "signal_event_type"]
