"""Database connections on the bus's threads: the hygiene a request has.

Django opens a connection per thread on first use and closes it only where
it knows a unit of work ended: ``close_old_connections()`` runs when a
request starts and when it finishes, closing each connection that is past
``CONN_MAX_AGE`` (at once for the default 0), unusable after an error, or
left with autocommit off. No request ends on the bus's threads -- the
worker behind ``publish_nowait``, the pool that runs the sync receivers of
``await publish`` with ``SYNC_EXECUTOR: "worker"`` -- so without this every
such thread would keep the connection its receivers opened, until the
database's ``max_connections`` ran out.

:class:`ConnectionHygiene` is the bus's dispatch context (entered around
each delivery of an event on a thread of the bus, or of asgiref's
thread-sensitive executor): before and after the delivery it applies the
same rules to the connections *deliveries opened on that thread*. A
connection the thread had before (a request's, on the thread-sensitive
executor) is not the delivery's to close and is left alone, and a
connection inside a transaction (an atomic block, or autocommit off when
the delivery starts) is never closed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from django.db import connections  # type: ignore[import-untyped]

from blinker_events import EventBus

__all__ = ["ConnectionHygiene", "install"]


class _ThreadState(threading.local):
    """Per thread: how deep in deliveries it is, the aliases whose connection
    was open when the outermost one started, and the DB-API connection each
    alias had when a delivery opened it (compared by identity: a new
    connection under the same alias is not the delivery's)."""

    def __init__(self) -> None:
        self.depth = 0
        self.found: set[str] = set()
        self.owned: dict[str, object] = {}


_state = _ThreadState()


class ConnectionHygiene:
    """The dispatch context that gives deliveries on the bus's threads a
    request's connection handling; ``inner``, a dispatch context that was
    set before, is entered inside it."""

    __slots__ = ("inner",)

    def __init__(self, inner: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        self.inner = inner

    def __call__(self) -> AbstractContextManager[None]:
        return self._around()

    @contextmanager
    def _around(self) -> Iterator[None]:
        # Only the outermost delivery on a thread tidies: a nested one runs
        # inside a receiver that may still be using its connection.
        outermost = _state.depth == 0
        _state.depth += 1
        try:
            if outermost:
                _tidy(starting=True)
                _state.found = {conn.alias for conn in _open_connections()}
            with nullcontext() if self.inner is None else self.inner():
                yield
        finally:
            _state.depth -= 1
            if outermost:
                for conn in _open_connections():
                    if conn.alias not in _state.found:
                        _state.owned[conn.alias] = conn.connection
                _tidy(starting=False)

    def __repr__(self) -> str:
        return f"<blinker_events Django connection hygiene around {self.inner!r}>"


def _open_connections() -> list[Any]:
    return [conn for conn in connections.all(initialized_only=True) if conn.connection is not None]


def _tidy(*, starting: bool) -> None:
    """``close_old_connections()`` for the connections deliveries opened on
    this thread, skipping any inside a transaction. At the start, a
    connection with autocommit off may belong to code still running (a
    nested caller); at the end, the delivery is over, so autocommit left off
    is a leftover and closes the connection, as after a request."""
    owned = _state.owned
    for conn in _open_connections():
        if owned.get(conn.alias) is not conn.connection or conn.in_atomic_block:
            continue
        if starting and not conn.get_autocommit():
            continue
        conn.close_if_unusable_or_obsolete()
    for alias in [alias for alias, raw in owned.items() if connections[alias].connection is not raw]:
        del owned[alias]


def install(bus: EventBus) -> None:
    """Make :class:`ConnectionHygiene` ``bus``'s dispatch context, around any
    it already had (once: a second call changes nothing)."""
    current = bus.dispatch_context
    if not isinstance(current, ConnectionHygiene):
        bus.set_dispatch_context(ConnectionHygiene(current))
