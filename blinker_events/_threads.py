"""The bus's pool: threads that run sync receivers off the publisher's
thread (the bus's other thread, its event loop, is :mod:`._loop_thread`).

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
- *loop thread*: see :mod:`._loop_thread`.

Both forget their threads in a forked child (:func:`~._fork.forget_after_fork`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from ._fork import forget_after_fork

__all__ = ["ThreadPool"]

logger = logging.getLogger("blinker_events")

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
        forget_after_fork(self)
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
