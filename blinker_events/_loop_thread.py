"""The bus loop: one event loop per bus, running forever in a daemon thread
(the *loop thread*), for the async receivers of ``publish_sync`` and of the
worker queue, whose callers have no loop of their own to run them on.

It starts on first use and is never closed while the bus lives, so
loop-bound resources that receivers create stay usable; ``shutdown`` stops
it. Other threads hand it work in two ways: :meth:`LoopThread.submit`, a
coroutine and a ``concurrent.futures`` future to wait on, and
:meth:`LoopThread.post`, which the worker queue uses, one job after another.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from ._fork import forget_after_fork
from ._interop import quiet_pending_task

__all__ = ["LoopThread", "hold_until_done"]

logger = logging.getLogger("blinker_events")
T = TypeVar("T")


class LoopThread:
    """One event loop running forever in a daemon thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        forget_after_fork(self)
        self.forget_threads()

    def forget_threads(self) -> None:
        """(Also in a forked child: the parent's loop thread does not exist
        there, and its loop must not be used.) A new loop starts on demand."""
        old = getattr(self, "_loop", None)
        if old is not None:
            # The parent's tasks, copied into the child, will never run here;
            # collected, each would log "Task was destroyed but it is pending".
            for task in asyncio.all_tasks(old):
                quiet_pending_task(task)
        # Nor will what was posted and not started: closed, its coroutines
        # do not warn that they were never awaited.
        for coro, _, _ in getattr(self, "_posted", ()):
            coro.close()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._inflight = 0
        #: What :meth:`post` handed over and the loop has not started yet;
        #: a new one for each loop (see :meth:`_start_posted`).
        self._posted: deque[_Post] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        #: The loop thread's id while it runs (None otherwise): compared with
        #: ``threading.get_ident()`` on hot paths, where a call costs more.
        self.ident: int | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                new_loop = asyncio.new_event_loop()
                # The posts of a stopped loop stay with it: it starts (and
                # so cancels) them as it closes, and none lands on this one.
                self._posted = deque()
                self._thread = threading.Thread(
                    target=self._run, args=(new_loop, ready, self._posted), name=f"{self._name}-loop", daemon=True
                )
                self._thread.start()
                ready.wait()
                self.ident = self._thread.ident
                self._loop = new_loop
            return self._loop

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event, posted: deque[_Post]) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            while True:
                try:
                    loop.run_forever()
                    break  # stop() was called
                except BaseException:
                    # A receiver task raised SystemExit or KeyboardInterrupt,
                    # which asyncio lets escape run_forever; the loop itself
                    # is fine, and other receivers still need it.
                    logger.exception("bus loop: a task raised out of the loop; it keeps running")
        finally:
            # A stop that gave up waiting (its timeout) can leave posts not
            # started yet: they become tasks now, to be cancelled with the
            # rest, so that each one's ``done`` is still called.
            with self._lock:
                left = list(posted)
                posted.clear()
            for post in left:
                self._start(loop, post)
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the loop. The task runs in a copy of the caller's
        context: ``call_soon_threadsafe`` captures it, and the task copies it.
        ``stop`` waits for what was submitted before it stops the loop."""
        with self._lock:
            self._inflight += 1
        future = asyncio.run_coroutine_threadsafe(coro, self.loop())
        future.add_done_callback(self._ended)
        return future

    def submit_to(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> Future[T] | None:
        """:meth:`submit`, but only while ``loop`` is still this thread's
        running loop (None otherwise, and ``coro`` is closed): for work bound
        to that loop, which a restarted one must not run."""
        with self._lock:
            if self._loop is not loop or not loop.is_running():
                coro.close()
                return None
            self._inflight += 1
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        future.add_done_callback(self._ended)
        return future

    def post(self, coro: Coroutine[Any, Any, Any], done: Callable[[asyncio.Future[Any]], object]) -> None:
        """Run ``coro`` on the loop as a task in a copy of the caller's
        context, and call ``done(task)`` on the loop when it ends (a stop
        of the loop cancels the task, as it cancels every task there).
        ``stop`` waits for what was posted, as for :meth:`submit`.

        For the worker queue, which hands the loop one job after another:
        posts wait in a queue that calls on the loop start a few at a time,
        so a burst of jobs wakes the loop once rather than once each (a
        wake-up is a write to the loop's self-pipe), and no
        ``concurrent.futures`` future is made and chained per job as
        :meth:`submit` does.
        """
        post = (coro, done, contextvars.copy_context())
        while True:
            loop = self.loop()
            # acquire/release, not ``with``, in the two lock rounds every
            # queued event with async receivers makes (here and ``_ended``):
            # a ``with`` on a lock costs twice the instructions.
            self._lock.acquire()
            try:
                # Appended while ``loop`` is still current, the post is
                # started by it: ``stop`` clears ``_loop`` under this lock
                # and only then asks the loop to stop, so the call scheduled
                # here, under the lock, runs before the loop stops, and what
                # it leaves for later turns is started as the loop closes
                # (see ``_run``).
                if self._loop is loop:
                    self._inflight += 1
                    posted = self._posted
                    posted.append(post)
                    if len(posted) == 1:  # later posts find the call on its way
                        loop.call_soon_threadsafe(self._start_posted, loop, posted)
                    return
            finally:
                self._lock.release()

    def _start_posted(self, loop: asyncio.AbstractEventLoop, posted: deque[_Post]) -> None:
        # On the loop thread: the oldest posts, at most _START_PER_TURN, and
        # a call for the next ones after whatever else the loop has to do.
        # A burst started whole would make thousands of tasks before any of
        # them ran: allocated faster than they are freed, they would make
        # the cyclic collector run several times as often, over ten times
        # as many objects, and the loop's other work would wait behind them.
        with self._lock:
            batch = [posted.popleft() for _ in range(min(len(posted), _START_PER_TURN))]
            if posted:  # still under the lock: a post that finds it empty schedules the call itself
                loop.call_soon(self._start_posted, loop, posted)
        for post in batch:
            self._start(loop, post)

    def _start(self, loop: asyncio.AbstractEventLoop, post: _Post) -> None:
        coro, done, context = post
        task = loop.create_task(coro, name=_POSTED_TASK, context=context)  # named: see _POSTED_TASK
        task.add_done_callback(functools.partial(self._post_ended, done=done))

    def _post_ended(self, task: asyncio.Future[Any], done: Callable[[asyncio.Future[Any]], object]) -> None:
        try:
            done(task)
        finally:
            self._ended(task)

    def _ended(self, _: Future[Any] | asyncio.Future[Any]) -> None:
        self._lock.acquire()  # not ``with``: see post
        try:
            self._inflight -= 1
            if not self._inflight:
                self._idle.notify_all()
        finally:
            self._lock.release()

    def in_loop_thread(self) -> bool:
        return self.ident == threading.get_ident()

    def stop(self, timeout: float | None = None) -> bool:
        """Wait for submitted work, then stop and close the loop, cancelling
        what still runs on it; ``timeout`` bounds both waits together.
        Returns False if the thread did not end within ``timeout``."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        with self._lock:
            if not self.in_loop_thread():
                self._idle.wait_for(lambda: not self._inflight, timeout)
            loop, thread = self._loop, self._thread
            self._loop = self._thread = self.ident = None
        if loop is None or thread is None:
            return True
        loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join(None if deadline is None else max(deadline - time.perf_counter(), 0))
        return not thread.is_alive()


#: The name of the tasks :meth:`LoopThread.post` starts (on 3.11 a task
#: made without a name formats one, per task).
_POSTED_TASK = "blinker_events: queued delivery"

#: How many posts one turn of the bus loop starts (see
#: ``LoopThread._start_posted``). Measured on 3.11 with a burst of 5,000
#: queued events to one async receiver, against starting the whole batch
#: at once: 1 to 16 delivered 2.1x-2.7x as many a second, 32 1.9x, 256 1.1x;
#: 16 is the largest that gained most, so it takes the fewest loop turns.
_START_PER_TURN = 16

#: A :meth:`LoopThread.post`: the coroutine, its ``done``, and the context
#: its task runs in.
_Post = tuple[Coroutine[Any, Any, Any], Callable[["asyncio.Future[Any]"], object], contextvars.Context]


#: How long one timer of :class:`_Held` lasts before it is renewed.
_HOLD_SECONDS = 86400.0


class _Held:
    """A task kept alive by a timer on its own loop (see :func:`hold_until_done`)."""

    __slots__ = ("handle", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.handle = task.get_loop().call_later(_HOLD_SECONDS, self.renew)
        task.add_done_callback(self.release)

    def renew(self) -> None:
        self.handle = self.task.get_loop().call_later(_HOLD_SECONDS, self.renew)

    def release(self, _: asyncio.Task[Any]) -> None:
        self.handle.cancel()


def hold_until_done(task: asyncio.Task[Any]) -> None:
    """Keep a task the bus started (and nobody awaits) referenced until it
    ends, as asyncio asks -- through its own loop, not the bus: a timer on
    the loop holds it. A loop closed with the task still pending (a bare
    ``loop.close()``, which unlike ``asyncio.run`` cancels nothing) drops its
    timers and so the task, which a set on the bus would have kept for the
    bus's life, with its coroutine, report and event. Call on the task's loop."""
    _Held(task)
