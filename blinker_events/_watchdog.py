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

The same rounds give the slow-receiver warning (``slow_after``, see
:mod:`._slow`): a watched sync receiver whose tuple carries a slow check,
and an async one entered in ``slow_tasks``, is logged once, with its stack,
when it has run that long -- before its timeout, or without one.

The watchdog also keeps the deadline of an async receiver that a publish
awaits directly in its own task (the single-receiver fast path of
``await publish``): at the deadline it asks that task's loop to cancel the
task, which is what ``asyncio.timeout`` does, minus a timer per call.

Writers (dispatch loops) store one tuple per receiver and take no lock; the
watchdog only reads, so a publish never waits on it.

The watchdog must survive anything: a failure while looking at one slot or
deadline (a hostile object in a log line, a bug) is logged and the watch goes
on with the next. Should the thread end all the same (an exception injected
from outside, say), ``running`` turns False as it ends, and the next dispatch
that needs the watchdog -- a receiver with a deadline on any thread --
notices, logs it and starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import traceback
import weakref
from time import perf_counter, sleep
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from ._describe import describe
from ._fork import reinit

if TYPE_CHECKING:
    from ._events import Event
    from ._subscription import Subscription

__all__ = ["SlowTask", "SlowWatch", "WatchSlot", "coroutine_stack", "watchdog"]

logger = logging.getLogger("blinker_events")

#: How often the watchdog looks while some receiver with a deadline runs,
#: and while none does. The first bounds how late an overrun is noticed.
BUSY_TICK = 0.01
IDLE_TICK = 0.05

#: ``(subscription, deadline, event, run, outer, started, slow)``: ``outer``
#: is what the thread was watched for when this receiver started -- the
#: receiver whose handling publishes inline -- so nested publishes keep every
#: deadline seen. ``deadline`` is inf for a receiver without a timeout (one
#: watched only for being slow); ``started`` is when the receiver's time
#: began and ``slow`` the delivery's slow check (None: ``slow_after`` off).
Watched = tuple["Subscription", float, "Event", "Movable | None", "Watched | None", float, "SlowWatch | None"]


class SlowWatch(Protocol):
    """A delivery's slow check (:class:`._slow.SlowCheck`)."""

    after: float

    def warn(self, sub: Subscription, event: Event, elapsed: float, where: str, stack: str) -> None: ...


class SlowTask(Protocol):
    """An async receiver watched for being slow (:class:`._slow.AsyncSlow`)."""

    sub: Subscription
    event: Event
    started: float
    awaitable: Any
    task: asyncio.Task[Any] | None
    fired: bool

    @property
    def check(self) -> SlowWatch: ...  # read-only here: a SlowCheck is a SlowWatch


class Movable(Protocol):
    """A run of sync receivers on a pool thread (:class:`._sync.SyncRun`),
    which the watchdog tells when a receiver in it overran."""

    def overran(self, slot: WatchSlot, watched: Watched) -> None: ...


class WatchSlot:
    """What one thread is running now: ``current`` is the innermost
    :data:`Watched` while a receiver with a deadline runs, else None.
    ``lock`` orders a pool thread's "my receiver returned" against the
    watchdog's "this run moves to another thread"."""

    __slots__ = ("__weakref__", "current", "ident", "lock", "reported")

    def __init__(self) -> None:
        self.current: Watched | None = None
        #: What the watchdog reported of ``current``'s chain: overruns (the
        #: watched tuple itself) and slow warnings (:class:`Slowed` of it).
        self.reported: list[Watched | Slowed] = []
        self.ident = threading.get_ident()
        self.lock = threading.Lock()


class Slowed:
    """In a slot's ``reported``: the slow warning given for ``watched``. One
    list for both kinds keeps the watchdog's round over an idle slot as it
    was -- one test -- with ``slow_after`` in use or not."""

    __slots__ = ("watched",)

    def __init__(self, watched: Watched) -> None:
        self.watched = watched


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
        #: True from a start until the watching thread ends: read (without
        #: the lock, one attribute) by every dispatch that needs the watchdog.
        self.running = False
        #: Deadlines of directly awaited async receivers. Added and removed
        #: on their loops without a lock (set operations are atomic); read
        #: here through a copy.
        self.awaited: set[AsyncDeadline] = set()
        #: Async receivers watched for being slow, added and removed like
        #: ``awaited``.
        self.slow_tasks: set[SlowTask] = set()

    def slot(self) -> WatchSlot:
        """The calling thread's slot, created (and the watchdog started) on
        first use; a watchdog that died meanwhile is restarted."""
        slot = self._local.slot
        if slot is None:
            slot = self._local.slot = WatchSlot()
            with self._lock:
                self._slots.add(slot)
                self._start()
        elif not self.running:
            self.ensure_running()
        return slot

    def _start(self) -> None:
        # Called with the lock held.
        thread = self._thread
        if self.running and thread is not None and thread.is_alive():
            return
        if thread is not None:
            logger.error("the blinker_events watchdog thread had stopped; started a new one")
        self.running = True
        self._thread = threading.Thread(target=self._watch, name="blinker_events-watchdog", daemon=True)
        self._thread.start()

    def ensure_running(self) -> None:
        """Start the watchdog if it does not run (never started, or died)."""
        if not self.running:
            with self._lock:
                self._start()

    def _watch(self) -> None:
        try:
            while True:
                busy = self._look(perf_counter())
                sleep(BUSY_TICK if busy else IDLE_TICK)
        finally:
            # Only this thread's own end: a new one may already have started.
            if self._thread is threading.current_thread():
                self.running = False

    def _look(self, now: float) -> bool:
        """One round over every slot and awaited deadline; True if any was busy."""
        busy = False
        with self._lock:
            slots = list(self._slots)
        for slot in slots:
            if slot.current is None:
                # Nothing runs there now: forget its reported overruns, which
                # would otherwise keep the last one's event (and its run,
                # report, source and data) for as long as the thread lives.
                if slot.reported:
                    slot.reported = []
                continue
            busy = True
            try:
                self._look_at(slot, now)
            except BaseException:  # the watchdog must survive anything
                _complain("watchdog: checking a thread's receivers failed; watching goes on")
        for deadline in list(self.awaited):
            busy = True
            if now > deadline.deadline and not deadline.fired:
                deadline.fired = True
                try:
                    deadline.loop.call_soon_threadsafe(self._expire, deadline)
                except RuntimeError:  # its loop is closed; nothing to cancel
                    self.awaited.discard(deadline)
                except BaseException:
                    _complain("watchdog: expiring an awaited receiver failed; watching goes on")
        for task in list(self.slow_tasks) if self.slow_tasks else ():
            busy = True
            if task.task is not None and task.task.done():  # ended: forget it (a read, safe from here)
                self.slow_tasks.discard(task)
            elif not task.fired and now - task.started > task.check.after:
                task.fired = True
                try:
                    stack = coroutine_stack(task.awaitable)
                    task.check.warn(task.sub, task.event, now - task.started, "async", stack)
                except BaseException:  # the watchdog must survive anything
                    _complain("watchdog: warning of a slow async receiver failed; watching goes on")
        return busy

    def _look_at(self, slot: WatchSlot, now: float) -> None:
        watched = slot.current
        reported: list[Watched | Slowed] = []
        while watched is not None:
            check = watched[6]
            if check is not None:
                given = [w for w in slot.reported if type(w) is Slowed and w.watched is watched]
                if given:
                    reported.append(given[0])
                elif now - watched[5] > check.after:
                    reported.append(Slowed(watched))
                    self._slow(slot, watched, check, now)
            if any(w is watched for w in slot.reported):
                reported.append(watched)
            elif now > watched[1]:
                reported.append(watched)
                self._overrun(slot, watched)
            watched = watched[4]
        slot.reported = reported

    def _slow(self, slot: WatchSlot, watched: Watched, check: SlowWatch, now: float) -> None:
        sub, _, event, run, _, started, _ = watched
        frame = sys._current_frames().get(slot.ident)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(thread gone)\n"
        check.warn(sub, event, now - started, "sync, inline" if run is None else "sync, on a pool thread", stack)

    def _expire(self, deadline: AsyncDeadline) -> None:
        # On the task's loop, so this cannot interleave with the publish:
        # if the receiver already returned, its deadline is gone from the set.
        if deadline in self.awaited and not deadline.expired:
            deadline.expired = True
            deadline.task.cancel()

    def _overrun(self, slot: WatchSlot, current: Watched) -> None:
        sub, _, event, run, _, _, _ = current
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
            except BaseException:  # the watchdog must survive anything
                _complain(f"watchdog: moving the run of {event!r} to another thread failed")


def coroutine_stack(awaitable: Any) -> str:
    """The frames of ``awaitable``'s chain of awaits, outermost first, as
    :func:`traceback.format_stack` formats them, or a note when there are
    none to show (an awaitable that is neither a coroutine nor a generator,
    or one that ended). Read from the watchdog thread: attribute reads of
    another thread's suspended (or running) frames, which the GIL keeps
    consistent."""
    frames: list[tuple[FrameType, int]] = []
    current = awaitable
    # An awaitable's own __getattr__ may raise: then what was found is shown.
    with contextlib.suppress(Exception):
        for _ in range(200):  # a chain of awaits is finite, but a hostile __await__ need not be
            frame = getattr(current, "cr_frame", None) or getattr(current, "gi_frame", None)
            if not isinstance(frame, FrameType):
                break
            frames.append((frame, frame.f_lineno))
            current = getattr(current, "cr_await", None) or getattr(current, "gi_yieldfrom", None)
            if current is None:
                break
    if not frames:
        return f"(no coroutine stack to show for {describe(awaitable)})\n"
    return "".join(traceback.StackSummary.extract(frames).format())


def _complain(message: str) -> None:
    """Log the exception being handled, on the watchdog thread, which no
    logging failure may end either."""
    with contextlib.suppress(BaseException):  # nothing is left to report it to
        logger.exception("%s", message)


watchdog = Watchdog()


def _after_fork_in_child() -> None:
    # The watching thread is the parent's; the child starts its own on demand.
    watchdog._lock = threading.Lock()
    watchdog._thread = None
    watchdog.running = False
    watchdog.awaited.clear()
    watchdog.slow_tasks.clear()
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
