"""Every bus's lifecycle beyond its own methods: interpreter exit and fork.

Each bus registers here when made (weakly: a bus nobody holds can go).

- At interpreter exit, :func:`shutdown_all` shuts down every bus still alive
  -- the default bus and any made by hand that the program never shut down
  -- within one deadline for all of them, so what they queued is delivered
  and what cannot be is dropped, counted and logged.
- In a forked child, the locks of every bus are re-made (see :mod:`._fork`);
  its queue, pool and loop thread forget the parent's jobs and threads in
  hooks of their own.
"""

from __future__ import annotations

import logging
import os
import weakref
from time import perf_counter
from typing import TYPE_CHECKING

from ._describe import describe
from ._fork import reinit

if TYPE_CHECKING:
    from ._bus import EventBus

__all__ = ["drain_at_exit", "register", "remaining", "shutdown_all"]

logger = logging.getLogger("blinker_events")

#: Every bus alive, in the order they were made, and whether interpreter
#: exit drains it (see :func:`shutdown_all`). Weak: a bus nobody holds can go.
_LIVE: weakref.WeakKeyDictionary[EventBus, bool] = weakref.WeakKeyDictionary()

#: What a stage of a shutdown gets once the deadline has passed: enough to
#: run (an outlet still disconnects, a queue still drops and logs), no wait.
_NO_TIME = 0.001


def register(bus: EventBus) -> None:
    """Called by every new bus."""
    _LIVE[bus] = True


def drain_at_exit(bus: EventBus, drain: bool) -> None:
    """Whether :func:`shutdown_all` at interpreter exit drains ``bus`` (the
    default of every bus), or whoever calls this with False does it (the
    Flask extension, with the app's own timeout)."""
    _LIVE[bus] = drain


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (None: no deadline), at least
    :data:`_NO_TIME`: a stage whose time is up still runs, without waiting."""
    return None if deadline is None else max(deadline - perf_counter(), _NO_TIME)


def shutdown_all(seconds: float) -> int:
    """Shut down every live bus within one deadline of ``seconds`` in all;
    return how many events were dropped. Run at interpreter exit.

    Buses go in the order they were made. A receiver of a later bus may
    publish into an earlier one, so the round repeats for any bus that has
    work again, until the deadline; then what is left is dropped (counted
    and logged) by a last shutdown without waiting.
    """
    deadline = perf_counter() + seconds
    dropped = 0
    pending = _drained_at_exit()
    while pending:
        for bus in pending:
            try:
                dropped += bus.shutdown(remaining(deadline))
            except Exception:  # one bus must not keep the others from draining
                logger.exception("shutdown at exit: %s failed", describe(bus))
        pending = [bus for bus in _drained_at_exit() if bus._queue.busy()]
        if pending and perf_counter() >= deadline:
            # Time is up: drop (and log) what was queued since; what is in
            # flight was reported by the shutdown that gave up on it.
            for bus in pending:
                if len(bus._queue):
                    dropped += bus._queue.join(_NO_TIME)
            break
    return dropped


def _drained_at_exit() -> list[EventBus]:
    return [bus for bus, drain in list(_LIVE.items()) if drain]


def _after_fork_in_child() -> None:
    # The bus's own locks (its queue, pool and loop thread re-make theirs):
    # a parent thread subscribing or recording history at the fork holds one.
    for bus in list(_LIVE):
        reinit(bus._lock, bus._bridges._lock, bus._history._lock)


os.register_at_fork(after_in_child=_after_fork_in_child)
