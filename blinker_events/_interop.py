"""Every use of another library's private API, in one place.

Each name here leans on something its library does not promise; each has
a test in ``tests/test_interop.py`` that pins the assumption it makes, so
an upgrade that breaks one fails that named test instead of misbehaving
somewhere in a dispatch:

- blinker (1.9): ``make_id``, ``make_ref``, ``ANY_ID``, and a signal's
  ``_disconnect`` and ``_by_receiver`` (:func:`disconnect_by_id`,
  :func:`senders_of`). The bus's own signal class
  (:class:`~._signals.EventSignal`) and the drop-in
  :class:`~._compat.Signal` subclass blinker's and override its
  ``connect``, ``_disconnect`` and ``_clear_state``, using
  ``_by_receiver``, ``_by_sender``, ``_weak_senders`` and the
  ``_make_cleanup_*`` factories; the tests pin those too.
- asyncio: ``_get_running_loop`` (:func:`running_loop`), a task's
  ``_log_destroy_pending`` (:func:`quiet_pending_task`).
- asgiref: ``SyncToAsync.threadlocal`` (:func:`outer_loop`).
- concurrent.futures: a ``Future``'s internal attributes and state
  constants (:class:`LazyFuture`).
"""

from __future__ import annotations

import asyncio
import collections.abc as c
import os
import threading
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync
from blinker import Signal
from blinker._utilities import make_id, make_ref
from blinker.base import ANY_ID

from ._fork import reinit

__all__ = [
    "ANY_ID",
    "LazyFuture",
    "disconnect_by_id",
    "make_id",
    "make_ref",
    "outer_loop",
    "quiet_pending_task",
    "running_loop",
    "senders_of",
]

T = TypeVar("T")

# -- blinker --------------------------------------------------------------------
#
# ``make_id(obj)``: the key blinker files a receiver or sender under (a bound
# method by its function and object). ``make_ref(obj, callback)``: a weak
# reference that also works for bound methods. ``ANY_ID``: the sender id of
# "any sender".


def disconnect_by_id(signal: Signal, receiver_id: c.Hashable, sender_id: c.Hashable = ANY_ID) -> None:
    """Take the receiver filed under ``receiver_id`` off ``signal`` (for one
    sender, or all), without sending ``receiver_disconnected``: blinker's
    ``Signal._disconnect``."""
    signal._disconnect(receiver_id, sender_id)


def senders_of(signal: Signal, receiver_id: c.Hashable) -> c.Set[c.Hashable]:
    """The sender ids the receiver filed under ``receiver_id`` is connected
    for (``ANY_ID`` among them: every sender): blinker's ``_by_receiver``."""
    senders: c.Set[c.Hashable] = signal._by_receiver.get(receiver_id, frozenset())
    return senders


# -- asyncio and asgiref ------------------------------------------------------


#: ``running_loop()``: the loop running in this thread, or None -- without
#: the exception ``asyncio.get_running_loop()`` raises, which costs a
#: traceback on the hot path. asyncio's private ``_get_running_loop``
#: itself (a C function: no wrapper frame), documented in asyncio's source
#: as the fast form for this very purpose.
running_loop: c.Callable[[], asyncio.AbstractEventLoop | None] = asyncio._get_running_loop


def outer_loop() -> asyncio.AbstractEventLoop | None:
    """The loop of the ``sync_to_async`` call this thread runs in, if any.

    asgiref records it on ``SyncToAsync.threadlocal`` (``main_event_loop``,
    with ``main_event_loop_pid`` for fork safety) for its own
    ``async_to_sync``; nothing public exposes it."""
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    loop: asyncio.AbstractEventLoop | None = getattr(local, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


def quiet_pending_task(task: asyncio.Task[Any]) -> None:
    """Keep asyncio from logging "Task was destroyed but it is pending" for
    ``task``, whose fate the bus reports itself. Sets the task's private
    ``_log_destroy_pending`` flag, which asyncio reads in ``Task.__del__``."""
    task._log_destroy_pending = False  # type: ignore[attr-defined]


# -- concurrent.futures -----------------------------------------------------------
#
# The future ``publish_nowait`` returns: a ``concurrent.futures.Future``
# that makes its Condition only when someone needs it.
#
# A stdlib Future builds a ``threading.Condition`` (a lock, lists, Python
# code) when it is created, and the worker takes and notifies it twice per
# event -- together about a third of the cost of a queued publish. Most
# futures of fire-and-forget publishes are settled before anyone looks at
# them, if anyone ever does. This subclass makes the Condition on first use
# (``result()``, ``add_done_callback()``, ``wait()``, ``asyncio.wrap_future``
# ...) and, while there is none, lets the worker settle the future under one
# lock shared by all of them. Anything that looks at the future creates the
# Condition under that same lock, so it sees either the settled state or a
# Condition that the settling will notify: the stdlib's guarantees hold.
#
# It relies on ``Future``'s internal attributes (``_state``, ``_result``,
# ``_exception``, ``_waiters``, ``_done_callbacks``) and state constants,
# unchanged since Python 3.2 and checked by the tests on every supported
# version.

_LOCK = threading.Lock()
_SETTLED = frozenset({CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED})


class LazyFuture(Future[T]):
    """A ``concurrent.futures.Future`` with its Condition made on first use."""

    # Until the Condition is made, nothing can wait on the future or add a
    # callback (both go through ``_condition``), so the waiter and callback
    # lists are the class's empty tuples, iterated as empty by Future's code,
    # and made per future together with the Condition.
    _waiters: list[Any] = ()  # type: ignore[assignment]
    _done_callbacks: list[Any] = ()  # type: ignore[assignment]

    def __init__(self) -> None:
        # Future.__init__ is not called: it would build the Condition.
        self._lazy_condition: threading.Condition | None = None
        self._state = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        condition = self._lazy_condition
        if condition is None:
            with _LOCK:
                condition = self._lazy_condition
                if condition is None:
                    self._waiters = []
                    self._done_callbacks = []
                    condition = self._lazy_condition = threading.Condition()
        return condition

    def set_running_or_notify_cancel(self) -> bool:
        # _LOCK.acquire/release, not ``with``, in the two calls every queued
        # event makes: a ``with`` on a lock costs twice the instructions.
        _LOCK.acquire()
        try:
            # Without a Condition nobody called cancel(): it is still pending.
            if self._lazy_condition is None and self._state == PENDING:
                self._state = RUNNING
                return True
        finally:
            _LOCK.release()
        return super().set_running_or_notify_cancel()

    # A settled future is mostly looked at once, by whoever waits for a
    # batch (the Redis bridge, say): these three answer that look without
    # making a Condition (and a settling thread then notifying it).

    def done(self) -> bool:
        with _LOCK:
            if self._lazy_condition is None:
                return self._state == FINISHED  # nothing cancels it without a Condition
        return super().done()

    def result(self, timeout: float | None = None) -> T:
        with _LOCK:
            settled = self._lazy_condition is None and self._state == FINISHED and self._exception is None
        return self._result if settled else super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        with _LOCK:
            settled = self._lazy_condition is None and self._state == FINISHED
        return self._exception if settled else super().exception(timeout)

    def set_result(self, result: T) -> None:
        if not self._settle_quietly(result, None):
            super().set_result(result)

    def set_exception(self, exception: BaseException | None) -> None:
        if not self._settle_quietly(None, exception):
            super().set_exception(exception)

    def _settle_quietly(self, result: Any, exception: BaseException | None) -> bool:
        """Settle without a Condition if nobody made one; False otherwise."""
        _LOCK.acquire()  # not ``with``: see set_running_or_notify_cancel
        try:
            if self._lazy_condition is not None:
                return False
            state = self._state
            if state not in _SETTLED:
                self._result = result
                self._exception = exception
                self._state = FINISHED
        finally:
            _LOCK.release()
        if state in _SETTLED:  # (repr(self) takes the lock: raise outside it)
            raise InvalidStateError(f"{state}: {self!r}")
        # Nothing can have been registered without making the Condition, so
        # there are no waiters and no callbacks to run here.
        return True


# A future settled by a parent thread at the fork must not leave _LOCK held
# in the child.
os.register_at_fork(after_in_child=lambda: reinit(_LOCK))
