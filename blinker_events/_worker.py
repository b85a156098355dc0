"""The worker queue behind ``publish_nowait``.

Jobs wait in a bounded FIFO deque. At most one pool thread at a time -- the
*drainer* -- takes jobs off it, so dispatches start in publish order. The
drainer is not a fixed thread: it is whichever pool thread holds the drain
loop, started when the first job arrives and ended when the deque is empty.
If a receiver hangs, the watchdog moves the job's run to a fresh pool thread
and the drain loop continues there (see :mod:`._sync`); the queue keeps
flowing.

A publisher never blocks an event loop here: with ``overflow="block"`` and a
full queue, a caller on a thread with a running loop gets
:class:`QueueFullError` at once instead, and so does the drainer itself
(waiting for room that only it can make would deadlock).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections import deque
from concurrent.futures import Future
from time import perf_counter
from typing import TYPE_CHECKING

from ._async import deliver_async
from ._context import CURRENT_CHAIN, CURRENT_EVENT
from ._errors import QueueFullError
from ._events import Event
from ._report import DeliveryReport
from ._sync import SyncRun
from ._threads import ThreadPool

if TYPE_CHECKING:
    from ._bus import EventBus

__all__ = ["NowaitJob", "WorkQueue"]

logger = logging.getLogger("blinker_events")


class NowaitJob:
    """One ``publish_nowait``: the event, the publisher's context, and the
    future the publisher holds."""

    __slots__ = ("bus", "context", "event", "future", "override", "report", "started")

    def __init__(
        self,
        bus: EventBus,
        event: Event,
        override: float | None,
        context: contextvars.Context,
        future: Future[DeliveryReport],
    ) -> None:
        self.bus = bus
        self.event = event
        self.override = override
        self.context = context
        self.future = future
        self.report = DeliveryReport(event)
        self.started = 0.0

    def run(self) -> bool:
        """Dispatch on the drainer thread; False if the run moved elsewhere."""
        self.started = perf_counter()
        route = self.bus._route(self.event)
        chain = self.context.run(CURRENT_CHAIN.get)
        run = SyncRun(
            self.bus,
            self.report,
            route.subs,
            chain,
            self.override,
            self.context,
            self._sync_done,
            then=self.bus._queue.drain,
        )
        return run.run()

    def _sync_done(self, run: SyncRun) -> None:
        if not run.async_subs:
            self.bus._finish_job(self, None)
            return
        # Async receivers go to the bus loop without the drainer waiting for
        # them: a receiver there may await work that needs the drainer.
        # This runs inside the job's context (SyncRun calls ``done`` there),
        # which the loop task copies.
        subs = tuple(run.async_subs)
        coro = deliver_async(self.bus, self.report, subs, run.chain, self.override, checked=True)
        token = CURRENT_EVENT.set(self.event)
        try:
            done = self.bus._loop_thread.submit(coro)
        finally:
            CURRENT_EVENT.reset(token)
        done.add_done_callback(lambda f: self.bus._finish_job(self, f.exception()))

    def drop(self, why: str) -> None:
        if not self.future.done():
            self.future.set_exception(QueueFullError(f"{self.event!r} was dropped: {why}"))


class WorkQueue:
    """A bounded FIFO of :class:`NowaitJob`, drained by one pool thread at a time."""

    def __init__(self, pool: ThreadPool, maxsize: int, overflow: str) -> None:
        self._pool = pool
        self.maxsize = maxsize
        self.overflow = overflow
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._empty = threading.Condition(self._lock)
        self._jobs: deque[NowaitJob] = deque()
        self._draining = False
        self._drainer: int | None = None
        self._room_waiters = 0
        self.dropped = 0
        self.rejected = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def put(self, job: NowaitJob, block_timeout: float | None) -> None:
        dropped: NowaitJob | None = None
        with self._lock:
            if len(self._jobs) >= self.maxsize:
                if self.overflow == "drop_oldest":
                    dropped = self._jobs.popleft()
                    self.dropped += 1
                else:
                    self._wait_for_room(block_timeout)
            self._jobs.append(job)
            start = not self._draining
            self._draining = True
        if dropped is not None:
            logger.warning("worker queue full (%d): dropped the oldest event %r", self.maxsize, dropped.event)
            dropped.drop("the worker queue was full (overflow='drop_oldest')")
        if start:
            self._pool.submit(self.drain)

    def _wait_for_room(self, block_timeout: float | None) -> None:
        # Called with the lock held and the queue full.
        if self.overflow == "block":
            if asyncio._get_running_loop() is not None:
                why = "the caller runs an event loop, which must not block"
            elif self._drainer == threading.get_ident():
                why = "the caller is the worker itself"
            else:
                self._room_waiters += 1
                try:
                    if self._room.wait_for(lambda: len(self._jobs) < self.maxsize, block_timeout):
                        return
                finally:
                    self._room_waiters -= 1
                why = f"no room within {block_timeout}s"
        else:
            why = "overflow='raise'"
        self.rejected += 1
        logger.warning("worker queue full (%d): publish rejected, %s", self.maxsize, why)
        raise QueueFullError(f"the worker queue is full ({self.maxsize} events): {why}")

    def drain(self) -> None:
        """The drain loop: run jobs until the deque is empty."""
        self._drainer = threading.get_ident()
        while True:
            with self._lock:
                if not self._jobs:
                    self._draining = False
                    self._drainer = None
                    self._empty.notify_all()
                    return
                job = self._jobs.popleft()
                if self._room_waiters:
                    self._room.notify()
            try:
                still_here = job.run()
            except BaseException as exc:  # a bug of ours: fail the job, keep draining
                logger.exception("worker: dispatch of %r failed", job.event)
                if not job.future.done():
                    job.future.set_exception(exc)
                still_here = True
            if not still_here:
                return  # the run moved; the thread it moved to drains on

    def join(self, timeout: float | None) -> int:
        """Wait until every queued job ran, up to ``timeout``; then drop what
        is left. Returns how many were dropped."""
        with self._lock:
            if self._drainer != threading.get_ident():
                self._empty.wait_for(lambda: not self._draining, timeout)
            left = list(self._jobs)
            self._jobs.clear()
            self.dropped += len(left)
        for job in left:
            logger.error("shutdown: dropped %r, still queued after %ss", job.event, timeout)
            job.drop("the bus shut down before it was delivered")
        return len(left)
