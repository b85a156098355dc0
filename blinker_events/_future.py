"""The future ``publish_nowait`` returns: a ``concurrent.futures.Future``
that makes its Condition only when someone needs it.

A stdlib Future builds a ``threading.Condition`` (a lock, lists, Python
code) when it is created, and the worker takes and notifies it twice per
event -- together about a third of the cost of a queued publish. Most
futures of fire-and-forget publishes are settled before anyone looks at
them, if anyone ever does. This subclass makes the Condition on first use
(``result()``, ``add_done_callback()``, ``wait()``, ``asyncio.wrap_future``
...) and, while there is none, lets the worker settle the future under one
lock shared by all of them. Anything that looks at the future creates the
Condition under that same lock, so it sees either the settled state or a
Condition that the settling will notify: the stdlib's guarantees hold.

It relies on ``Future``'s internal attributes (``_state``, ``_result``,
``_exception``, ``_waiters``, ``_done_callbacks``) and state constants,
unchanged since Python 3.2 and checked by the tests on every supported
version.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING
from typing import Any, TypeVar

from ._fork import reinit

__all__ = ["LazyFuture"]

T = TypeVar("T")

_LOCK = threading.Lock()
_SETTLED = frozenset({CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED})


class LazyFuture(Future[T]):
    """A ``concurrent.futures.Future`` with its Condition made on first use."""

    def __init__(self) -> None:
        # Future.__init__ is not called: it would build the Condition.
        self._lazy_condition: threading.Condition | None = None
        self._state = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Any] = []

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        condition = self._lazy_condition
        if condition is None:
            with _LOCK:
                condition = self._lazy_condition
                if condition is None:
                    condition = self._lazy_condition = threading.Condition()
        return condition

    def set_running_or_notify_cancel(self) -> bool:
        with _LOCK:
            # Without a Condition nobody called cancel(): it is still pending.
            if self._lazy_condition is None and self._state == PENDING:
                self._state = RUNNING
                return True
        return super().set_running_or_notify_cancel()

    def set_result(self, result: T) -> None:
        if not self._settle_quietly("_result", result):
            super().set_result(result)

    def set_exception(self, exception: BaseException | None) -> None:
        if not self._settle_quietly("_exception", exception):
            super().set_exception(exception)

    def _settle_quietly(self, field: str, value: Any) -> bool:
        """Settle without a Condition if nobody made one; False otherwise."""
        with _LOCK:
            if self._lazy_condition is not None:
                return False
            state = self._state
            if state not in _SETTLED:
                setattr(self, field, value)
                self._state = FINISHED
        if state in _SETTLED:  # (repr(self) takes the lock: raise outside it)
            raise InvalidStateError(f"{state}: {self!r}")
        # Nothing can have been registered without making the Condition, so
        # there are no waiters and no callbacks to run here.
        return True


# A future settled by a parent thread at the fork must not leave _LOCK held
# in the child.
os.register_at_fork(after_in_child=lambda: reinit(_LOCK))
