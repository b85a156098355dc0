"""The bus's threads: a pool that runs sync receivers off the publisher's
thread, and one long-lived event loop for async receivers reached from sync
code.

Thread roles, as the rest of the package names them:

- *pool thread*: runs a batch of sync receivers for ``await publish`` and the
  worker queue's drain loop. The pool grows on demand instead of having a
  fixed size, because a receiver may block on work that itself needs a pool
  thread (it waits on a thread that awaits ``publish``); a fixed pool would
  deadlock there. Its limit, :data:`MAX_THREADS` busy threads, is soft for
  the same reason: work waiting for a thread gets one more whenever no busy
  thread finished anything for :data:`STARVED_SECONDS` (they may all be
  waiting on that very work), and the worker queue's drain never waits.
  Idle threads linger a few seconds, then exit. A thread
  stuck in a hung receiver simply is not idle; its run has moved on
  (see :mod:`._sync`), and it rejoins the pool if the receiver ever returns.
- *loop thread*: one event loop per bus, started on first use, that runs
  async receivers for ``publish_sync`` and the worker when the calling thread
  has no loop of its own. It is never closed while the bus lives, so loop-
  bound resources created by receivers stay usable; ``shutdown`` stops it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from ._interop import quiet_pending_task

__all__ = ["LoopThread", "ThreadPool", "hold_until_done"]

logger = logging.getLogger("blinker_events")
T = TypeVar("T")

IDLE_SECONDS = 5.0
#: Beyond this many busy threads (not counting stuck ones), work waits for
#: a thread to become idle...
MAX_THREADS = 64
#: ... or, when none became idle for this long, for one started past the
#: limit: the busy ones may all be waiting on the work that waits.
STARVED_SECONDS = 0.5


class _PoolThread:
    __slots__ = ("inbox", "thread")

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None


class ThreadPool:
    """An elastic pool of daemon threads; :meth:`submit` never blocks."""

    def __init__(self, name: str) -> None:
        self._name = name
        _FORGET_AFTER_FORK.add(self)
        self._lock = threading.Lock()
        self._idle: list[_PoolThread] = []
        self._backlog: list[Callable[[], object]] = []
        self._count = 0
        self._closed = False
        self._finished = 0  # jobs ever finished: the backlog's sign of progress
        self._relieving = False  # a _relieve thread watches the backlog
        #: Threads now stuck in a receiver past its deadline, and how many
        #: runs were ever moved off such a thread.
        self.stuck = 0
        self.moved_runs = 0

    def submit(self, fn: Callable[[], object], *, urgent: bool = False) -> None:
        """Run ``fn`` on an idle thread, else a new one. Beyond
        :data:`MAX_THREADS` busy threads, ``fn`` waits for one to be free --
        unless ``urgent``: work that busy threads may be waiting on (the
        worker queue's drain, one per bus at a time) always gets a thread,
        or those threads would wait for it forever."""
        with self._lock:
            self._closed = False  # after close(), threads serve again on demand
            if self._idle:
                self._idle.pop().inbox.put(fn)
                return
            # Threads stuck in a hung receiver do not count: work must not
            # wait behind them (that would stall every publisher once a few
            # receivers hang). They are counted in ``stuck`` instead.
            if self._count - self.stuck >= MAX_THREADS and not urgent:
                if not self._backlog:  # once per saturation, not once per job
                    logger.warning("%s: all %d threads busy; work waits for one", self._name, MAX_THREADS)
                self._backlog.append(fn)
                relieve, self._relieving = not self._relieving, True
                if relieve:
                    threading.Thread(target=self._relieve, name=f"{self._name}-relief", daemon=True).start()
                return
            self._count += 1
        self._start(fn)

    def _start(self, fn: Callable[[], object]) -> None:
        # Called after ``_count`` was raised for the new thread.
        worker = _PoolThread()
        # The first job goes through the inbox too, not the thread's args:
        # a Thread holds its args until it ends, and with them the job's run.
        worker.inbox.put(fn)
        worker.thread = threading.Thread(
            target=self._serve, args=(worker,), name=f"{self._name}-{self._count}", daemon=True
        )
        worker.thread.start()

    def _relieve(self) -> None:
        """While work waits for a thread: every :data:`STARVED_SECONDS` in
        which no busy thread finished anything, start one more for it."""
        while True:
            seen = self._finished
            time.sleep(STARVED_SECONDS)
            with self._lock:
                if not self._backlog:
                    self._relieving = False
                    return
                if self._finished != seen:
                    continue
                fn = self._backlog.pop(0)
                self._count += 1
                busy = self._count - self.stuck
            logger.warning(
                "%s: no busy thread finished for %.1fs (they may wait on work that waits for a thread): "
                "starting one more, %d busy now",
                self._name,
                STARVED_SECONDS,
                busy,
            )
            self._start(fn)

    def _serve(self, worker: _PoolThread) -> None:
        fn = worker.inbox.get()
        while fn is not None:
            try:
                fn()
            except BaseException:  # pragma: no cover - jobs catch their own errors
                logger.exception("%s: job raised", self._name)
            # Let go of the finished job before waiting for the next: an idle
            # thread holding it would keep its run alive -- the report, the
            # event, its source and data, and the bus -- for as long as it idles.
            fn = None
            fn = self._next(worker)
        with self._lock:
            self._count -= 1

    def _next(self, worker: _PoolThread) -> Callable[[], object] | None:
        with self._lock:
            self._finished += 1
            if self._backlog:
                return self._backlog.pop(0)
            if self._closed:
                return None
            self._idle.append(worker)
        try:
            return worker.inbox.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            with self._lock:
                if worker in self._idle:
                    self._idle.remove(worker)
                    return None
            # submit() took this thread in the meantime; its job is on the way.
            return worker.inbox.get()

    def note_stuck(self, delta: int) -> None:
        with self._lock:
            self.stuck += delta
            if delta > 0:
                self.moved_runs += 1

    def threads(self) -> int:
        with self._lock:
            return self._count

    def close(self) -> None:
        """Let idle threads exit; busy ones exit when their job ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.inbox.put(None)

    def forget_threads(self) -> None:
        """(In a forked child.) The parent's threads do not exist here."""
        self._lock = threading.Lock()
        self._idle = []
        self._backlog = []
        self._count = 0
        self._relieving = False
        self.stuck = 0


class LoopThread:
    """One event loop running forever in a daemon thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        _FORGET_AFTER_FORK.add(self)
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
        #: What :meth:`post` handed over and the loop has not started yet.
        self._posted: list[_Post] = []
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
                self._thread = threading.Thread(
                    target=self._run, args=(new_loop, ready), name=f"{self._name}-loop", daemon=True
                )
                self._thread.start()
                ready.wait()
                self.ident = self._thread.ident
                self._loop = new_loop
            return self._loop

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
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
        posts wait in a list that one call on the loop takes whole, so a
        burst of jobs wakes the loop once rather than once each (a wake-up
        is a write to the loop's self-pipe), and no ``concurrent.futures``
        future is made and chained per job as :meth:`submit` does.
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
                # here, under the lock, runs before the loop stops.
                if self._loop is loop:
                    self._inflight += 1
                    self._posted.append(post)
                    if len(self._posted) == 1:  # later posts find the call on its way
                        loop.call_soon_threadsafe(self._start_posted, loop)
                    return
            finally:
                self._lock.release()

    def _start_posted(self, loop: asyncio.AbstractEventLoop) -> None:
        # On the loop thread: every post made since the last call.
        with self._lock:
            posted, self._posted = self._posted, []
        for coro, done, context in posted:
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


#: Pools and loop threads, which a forked child must not think it has.
_FORGET_AFTER_FORK: weakref.WeakSet[ThreadPool | LoopThread] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for owner in list(_FORGET_AFTER_FORK):
        owner.forget_threads()


# A gunicorn worker forked from a master that already published must start
# threads of its own, not wait on copies of the master's that never run.
os.register_at_fork(after_in_child=_after_fork_in_child)
