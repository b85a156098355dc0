"""Locks in a forked child.

``os.fork()`` copies every lock as it was, held or not, but only the forking
thread: a lock another thread held at that moment stays held in the child
for good, and the first use there deadlocks. Each module that owns a lock
registers an ``after_in_child`` hook that calls :func:`reinit` on it, which
re-makes the lock in place (so everything holding a reference to it sees the
fresh one) -- the stdlib's own way (``logging``, ``threading``,
``concurrent.futures`` do the same).
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["reinit"]

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
