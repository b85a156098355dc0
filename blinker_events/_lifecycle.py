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
import threading
import weakref
from time import perf_counter
from typing import Protocol

from ._describe import describe
from ._fork import reinit

__all__ = ["drain_at_exit", "register", "remaining", "shutdown_all"]

logger = logging.getLogger("blinker_events")


class Managed(Protocol):
    """What the lifecycle shuts down: a bus."""

    def shutdown(self, timeout: float | None = None) -> int: ...


class Queue(Protocol):
    """What the lifecycle asks of a bus's worker queue."""

    def busy(self) -> bool: ...

    def __len__(self) -> int: ...

    def join(self, timeout: float | None) -> int: ...


class _Entry:
    """A registered bus's worker queue and locks, and whether interpreter
    exit drains it. Holds nothing that holds the bus."""

    __slots__ = ("drain", "locks", "queue")

    def __init__(self, queue: Queue, locks: tuple[threading.Lock | threading.RLock, ...]) -> None:
        self.drain = True
        self.queue = queue
        self.locks = locks


#: Every bus alive, in the order they were made (see :func:`shutdown_all`).
#: Weak: a bus nobody holds can go.
_LIVE: weakref.WeakKeyDictionary[Managed, _Entry] = weakref.WeakKeyDictionary()

#: What a stage of a shutdown gets once the deadline has passed: enough to
#: run (an outlet still disconnects, a queue still drops and logs), no wait.
_NO_TIME = 0.001


def register(bus: Managed, queue: Queue, locks: tuple[threading.Lock | threading.RLock, ...]) -> None:
    """Called by every new bus, with its worker queue and the locks a
    forked child must re-make (its queue, pool and loop thread re-make
    theirs)."""
    _LIVE[bus] = _Entry(queue, locks)


def drain_at_exit(bus: Managed, drain: bool) -> None:
    """Whether the shutdown of every bus at interpreter exit drains ``bus`` (the
    default of every bus), or whoever calls this with False does it (the
    Flask extension, with the app's own timeout)."""
    _LIVE[bus].drain = drain


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
        pending = [bus for bus in _drained_at_exit() if _LIVE[bus].queue.busy()]
        if pending and perf_counter() >= deadline:
            # Time is up: drop (and log) what was queued since; what is in
            # flight was reported by the shutdown that gave up on it.
            for bus in pending:
                queue = _LIVE[bus].queue
                if len(queue):
                    dropped += queue.join(_NO_TIME)
            break
    return dropped


def _drained_at_exit() -> list[Managed]:
    return [bus for bus, entry in list(_LIVE.items()) if entry.drain]


def _after_fork_in_child() -> None:
    # The bus's own locks (its queue, pool and loop thread re-make theirs):
    # a parent thread subscribing or recording history at the fork holds one.
    for entry in list(_LIVE.values()):
        reinit(*entry.locks)


os.register_at_fork(after_in_child=_after_fork_in_child)
