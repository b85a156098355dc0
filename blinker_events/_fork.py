"""Locks in a forked child.

``os.fork()`` copies every lock as it was, held or not, but only the forking
thread: a lock another thread held at that moment stays held in the child
for good, and the first use there deadlocks. Each module that owns a lock
registers an ``after_in_child`` hook that calls :func:`reinit` on it, which
re-makes the lock in place (so everything holding a reference to it sees the
fresh one) -- the stdlib's own way (``logging``, ``threading``,
``concurrent.futures`` do the same).

The bus's pool and loop thread forget their threads there instead
(:func:`forget_after_fork`): the parent's threads do not exist in the child.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Protocol

__all__ = ["forget_after_fork", "reinit"]

_RLOCK = type(threading.RLock())


def reinit(*locks: Any) -> None:
    """Re-make each lock (``Lock``, ``RLock`` or ``Condition``) unheld.

    An ``RLock`` the forking thread itself holds is left alone: that thread
    goes on in the child and will release it.
    """
    for lock in locks:
        if isinstance(lock, _RLOCK) and lock._is_owned():  # type: ignore[attr-defined]
            continue
        lock._at_fork_reinit()


class _HasThreads(Protocol):
    def forget_threads(self) -> None: ...


#: Pools and loop threads, which a forked child must not think it has.
_FORGET_AFTER_FORK: weakref.WeakSet[_HasThreads] = weakref.WeakSet()


def forget_after_fork(owner: _HasThreads) -> None:
    """Have ``owner.forget_threads()`` called in a forked child (for as long
    as ``owner`` lives): the parent's threads do not exist there."""
    _FORGET_AFTER_FORK.add(owner)


def _after_fork_in_child() -> None:
    for owner in list(_FORGET_AFTER_FORK):
        owner.forget_threads()


# A gunicorn worker forked from a master that already published must start
# threads of its own, not wait on copies of the master's that never run.
os.register_at_fork(after_in_child=_after_fork_in_child)
