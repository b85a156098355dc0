"""``publish_on_commit``: publish once the transaction commits."""

from __future__ import annotations

import logging

from django.db import connections, transaction  # type: ignore[import-untyped]

import blinker_events
from blinker_events import Event
from blinker_events.lowlevel import check_flag, check_timeout

__all__ = ["publish_on_commit"]

logger = logging.getLogger("blinker_events")


def publish_on_commit(
    event: Event, *, using: str | None = None, timeout: float | None = None, nowait: bool = False
) -> None:
    """Publish ``event`` on the default bus when the current transaction of
    database ``using`` commits; never if it rolls back. Outside a
    transaction (autocommit) it is published at once.

    ``publish_sync`` is used, in the thread that commits (after the commit,
    so receivers see the committed rows); ``nowait=True`` queues it with
    ``publish_nowait`` instead. Errors -- receiver errors when
    ``PROPAGATE_EXCEPTIONS`` is on, a full queue -- are logged and never
    raised into the commit, which has already happened.

    :param event: the :class:`~blinker_events.Event` to publish.
    :param using: the database alias; None: the default database.
    :param timeout: the publish's per-receiver timeout, as for ``publish_sync``.
    :param nowait: queue it with ``publish_nowait`` instead.
    :raises TypeError, ValueError: a bad ``event``, ``timeout`` or ``nowait``, at the call.
    """
    if not isinstance(event, Event):
        raise TypeError(f"event must be an Event, not {type(event).__name__}")
    timeout = check_timeout(timeout)
    check_flag(nowait, "nowait")
    # Checked here so that a bad alias is refused naming the argument, not
    # with whatever Django's connection lookup raises for it.
    if using is not None:
        if not isinstance(using, str):
            raise TypeError(f"using must be a database alias (a str) or None, not {type(using).__name__}")
        if using not in connections:
            raise ValueError(f"using must be one of the DATABASES aliases {list(connections)}, not {using!r}")

    def publish() -> None:
        bus = blinker_events.default_bus
        try:
            if nowait:
                bus.publish_nowait(event, timeout=timeout)
            else:
                bus.publish_sync(event, timeout=timeout)
        except Exception:
            logger.exception("publish_on_commit: publishing %r failed", event)

    transaction.on_commit(publish, using=using)
