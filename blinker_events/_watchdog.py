"""The watchdog: notices receivers that overrun their timeout.

Python cannot interrupt a thread, so a sync receiver that hangs cannot be
stopped. What can be done is to notice it: every thread that runs receivers
has a :class:`WatchSlot` saying which receiver it is in and until when that
receiver may run. One daemon thread (the *watchdog*) looks at all slots a few
times per timeout, and for each overrun it

- logs a warning with the receiver's current stack, once per overrun, and
- hands the overrun to the slot's :class:`~blinker_events._sync.SyncRun`,
  when the receivers run on a pool thread, so the publisher waiting on that
  run is released and the remaining receivers continue on another thread.

Receivers running inline in the publisher's own thread have no run: for them
the warning is all that can happen until they return, when the dispatch loop
counts the overrun as a timeout.

The watchdog also keeps the deadline of an async receiver that a publish
awaits directly in its own task (the single-receiver fast path of
``await publish``): at the deadline it asks that task's loop to cancel the
task, which is what ``asyncio.timeout`` does, minus a timer per call.

Writers (dispatch loops) store one tuple per receiver and take no lock; the
watchdog only reads, so a publish never waits on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import traceback
import weakref
from time import perf_counter, sleep
from typing import TYPE_CHECKING, Any

from ._fork import reinit

if TYPE_CHECKING:
    from ._events import Event
    from ._subscription import Subscription
    from ._sync import SyncRun

__all__ = ["WatchSlot", "watchdog"]

logger = logging.getLogger("blinker_events")

#: How often the watchdog looks while some receiver with a deadline runs,
#: and while none does. The first bounds how late an overrun is noticed.
BUSY_TICK = 0.01
IDLE_TICK = 0.05

#: ``(subscription, deadline, event, run, outer)``: ``outer`` is what the
#: thread was watched for when this receiver started -- the receiver whose
#: handling publishes inline -- so nested publishes keep every deadline seen.
Watched = tuple["Subscription", float, "Event", "SyncRun | None", "Watched | None"]


class WatchSlot:
    """What one thread is running now: ``current`` is the innermost
    :data:`Watched` while a receiver with a deadline runs, else None.
    ``lock`` orders a pool thread's "my receiver returned" against the
    watchdog's "this run moves to another thread"."""

    __slots__ = ("__weakref__", "current", "ident", "lock", "reported")

    def __init__(self) -> None:
        self.current: Watched | None = None
        self.reported: list[Watched] = []
        self.ident = threading.get_ident()
        self.lock = threading.Lock()


class AsyncDeadline:
    """An async receiver awaited directly by a publishing task, with its
    deadline. ``expired`` is set, on the loop, when the watchdog cancelled
    the task for it."""

    __slots__ = ("deadline", "event", "expired", "fired", "loop", "sub", "task")

    def __init__(
        self,
        sub: Subscription,
        deadline: float,
        event: Event,
        loop: asyncio.AbstractEventLoop,
        task: asyncio.Task[Any],
    ) -> None:
        self.sub = sub
        self.deadline = deadline
        self.event = event
        self.loop = loop
        self.task = task
        self.fired = self.expired = False


class _ThreadSlot(threading.local):
    slot: WatchSlot | None = None  # per thread; the class value is the default


#: Each thread's slot; ``thread_slots.slot`` is None until ``watchdog.slot()``
#: made one (read directly on the hot path, saving a call).
thread_slots = _ThreadSlot()


class Watchdog:
    def __init__(self) -> None:
        self._local = thread_slots
        self._slots: weakref.WeakSet[WatchSlot] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Deadlines of directly awaited async receivers. Added and removed
        #: on their loops without a lock (set operations are atomic); read
        #: here through a copy.
        self.awaited: set[AsyncDeadline] = set()

    def slot(self) -> WatchSlot:
        """The calling thread's slot, created (and the watchdog started) on first use."""
        slot = self._local.slot
        if slot is None:
            slot = self._local.slot = WatchSlot()
            with self._lock:
                self._slots.add(slot)
                self._start()
        return slot

    def _start(self) -> None:
        # Called with the lock held.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._watch, name="blinker_events-watchdog", daemon=True)
            self._thread.start()

    def ensure_running(self) -> None:
        if self._thread is None:
            with self._lock:
                self._start()

    def _watch(self) -> None:
        while True:
            busy = False
            now = perf_counter()
            with self._lock:
                slots = list(self._slots)
            for slot in slots:
                watched = chain = slot.current
                if chain is None:
                    continue
                busy = True
                reported = []
                while watched is not None:
                    if any(w is watched for w in slot.reported):
                        reported.append(watched)
                    elif now > watched[1]:
                        reported.append(watched)
                        self._overrun(slot, watched)
                    watched = watched[4]
                slot.reported = reported
            for deadline in list(self.awaited):
                busy = True
                if now > deadline.deadline and not deadline.fired:
                    deadline.fired = True
                    try:
                        deadline.loop.call_soon_threadsafe(self._expire, deadline)
                    except RuntimeError:  # its loop is closed; nothing to cancel
                        self.awaited.discard(deadline)
            sleep(BUSY_TICK if busy else IDLE_TICK)

    def _expire(self, deadline: AsyncDeadline) -> None:
        # On the task's loop, so this cannot interleave with the publish:
        # if the receiver already returned, its deadline is gone from the set.
        if deadline in self.awaited and not deadline.expired:
            deadline.expired = True
            deadline.task.cancel()

    def _overrun(self, slot: WatchSlot, current: Watched) -> None:
        sub, _, event, run, _ = current
        frame = sys._current_frames().get(slot.ident)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(thread gone)\n"
        where = "on a pool thread; the publisher is released" if run is not None else "inline; it cannot be stopped"
        logger.warning(
            "receiver %s overran its timeout handling %s (%s). It is running here:\n%s",
            sub.name,
            repr(event),
            where,
            stack,
        )
        if run is not None:
            try:
                run.overran(slot, current)
            except Exception:  # the watchdog must survive anything
                logger.exception("watchdog: moving the run of %s to another thread failed", repr(event))


watchdog = Watchdog()


def _after_fork_in_child() -> None:
    # The watching thread is the parent's; the child starts its own on demand.
    watchdog._lock = threading.Lock()
    watchdog._thread = None
    watchdog.awaited.clear()
    # So are the other threads' slots: watched here, a parent's receiver
    # "overrunning" would have its run moved on, and the parent's job
    # delivered in the child. Only the forking thread goes on in the child.
    own = thread_slots.slot
    watchdog._slots = weakref.WeakSet()
    if own is not None:
        reinit(own.lock)
        own.reported = []
        own.ident = threading.get_ident()
        watchdog._slots.add(own)


os.register_at_fork(after_in_child=_after_fork_in_child)
