"""The worker queue behind ``publish_nowait``.

Jobs wait in a bounded FIFO deque, and only there: at most one pool thread
at a time -- the *drainer* -- takes them off it, one at a time, so
dispatches start in publish order. The drainer is not a fixed thread: it is
whichever pool thread holds the drain loop's *owner* token, started when the
first job arrives and ended when the deque is empty. The drain is handed to
another thread, never duplicated, in two cases:

- a receiver overruns its timeout: the watchdog moves the job's run to a
  fresh pool thread and the drain loop continues there after it (see
  :mod:`._sync`);
- a publisher is blocked on the full queue and no job started for
  :data:`HANDOFF_SECONDS`: the receiver the drainer is in may be waiting on
  that very publisher (a plain thread it started), so the drain moves to a
  fresh thread and the old one, when its job ends, goes back to the pool.

Either way the next job is taken from the head of the deque, so nothing
waits stranded with a stuck thread and nothing is overtaken.

A publisher never blocks an event loop here: with ``overflow="block"`` and a
full queue, a caller on a thread with a running loop gets
:class:`QueueFullError` at once instead, and so does code running as part of
a job of this queue (waiting for room that only the worker can make would
deadlock). "Part of a job" is told by a context variable set in the job's
context, so it holds on whatever thread the job's run has moved to, and in
threads the receivers start with a copy of their context.

A job is *in flight* from the moment the drainer takes it until its future is
resolved, which for async receivers is later, on the bus loop. ``join`` (and
so ``shutdown``) waits for in-flight jobs too, so nothing already taken off
the queue is cut short.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
import weakref
from collections import deque
from concurrent.futures import Future, InvalidStateError
from contextvars import ContextVar
from time import perf_counter
from typing import TYPE_CHECKING

from ._async import deliver_off_thread
from ._context import get_handling
from ._describe import describe
from ._errors import QueueFullError
from ._interop import running_loop
from ._report import DeliveryReport
from ._settings import LiveSettings
from ._sync import SyncRun
from ._threads import ThreadPool

if TYPE_CHECKING:
    from ._runtime import Runtime
    from ._subscription import Subscription

__all__ = ["NowaitJob", "WorkQueue"]

logger = logging.getLogger("blinker_events")

#: How long a publisher blocked on the full queue waits for any job to
#: start before it hands the drain to a fresh thread (see the module doc).
HANDOFF_SECONDS = 1.0

#: The queue whose job the running code belongs to, if any.
_JOB_OF: ContextVar[WorkQueue | None] = ContextVar("blinker_events.job_of", default=None)


class NowaitJob(SyncRun):
    """One ``publish_nowait``: the event's report, the publisher's context,
    the future the publisher holds -- and, from its dispatch on, the run of
    its sync receivers (a :class:`SyncRun`, which the watchdog can move).

    Job and run are one object: a queued event costs one allocation for
    both, and the run's end settles the job without a callback."""

    __slots__ = ("_async_subs", "future", "owner", "queue", "resolved", "started")

    started: float
    _async_subs: tuple[Subscription, ...]

    def __init__(
        self,
        runtime: Runtime,
        queue: WorkQueue,
        report: DeliveryReport,
        override: float | None,
        context: contextvars.Context,
        future: Future[DeliveryReport],
    ) -> None:
        # SyncRun's fields, set here instead of by SyncRun.__init__ (one
        # call less per event). ``subs``, ``chain`` and ``async_subs`` are set at dispatch,
        # when the event is routed; ``done`` and ``then`` are not used: the
        # job overrides the two methods that read them.
        self.runtime = runtime
        self.report = report
        self.override = override
        self.context = context
        self.movable = True
        self.index = 0
        self.slot = None
        self.async_checked = True
        self.finished = self.given_up = False
        self.queue = queue
        self.future = future
        self.resolved = False
        #: The drain that took this job; a run moved off a hung receiver
        #: drains on as that owner (and stops if the drain moved meanwhile).
        self.owner: object = None

    def dispatch(self) -> bool:
        """Run the job on the drainer thread, inside ``self.context``;
        False if the run moved to another thread."""
        # Mark the context as this queue's job's (see _JOB_OF).
        _JOB_OF.set(self.queue)
        self.started = perf_counter()
        # Routed now, not at publish: who receives it is who listens when
        # its turn comes.
        report = self.report
        route = self.runtime.route(report.event)
        if route.collect:
            report.results = []
        self.subs = route.subs
        # Made now, not at publish: an object that lives only while the job
        # runs, rather than one more per queued job for the collector to visit.
        self.async_subs = []
        handling = get_handling()
        self.chain = () if handling is None else handling[1]  # the publisher's chain (current_chain, inlined)
        return self._run()

    def withdrawn(self) -> None:
        """The publisher cancelled the future before the dispatch started:
        no receiver runs; the history records the publish with every receiver
        it would have reached under ``cancelled``."""
        runtime = self.runtime
        report = self.report  # made at publish; nothing recorded into it yet
        why = "its future was cancelled while queued"
        runtime.outcomes.cancelled_unless_done(report, runtime.route(report.event).subs, why)
        runtime.history.record(report)

    def _resume(self) -> None:
        # SyncRun's, on the thread the watchdog moved the run to; then the
        # drain goes on here, as the same owner.
        if self.context.copy().run(self._run):
            self.queue.drain(self.owner, self)

    def _finish(self) -> None:
        # SyncRun's end of the sync receivers, inside the job's context, on
        # the thread that runs the drain loop next (see ``drain``): a job
        # without async receivers is settled here, and that loop takes it
        # off the in-flight set in the lock round it makes anyway.
        self.finished = True
        if not self.async_subs:
            self.finish(None, here=True)
            return
        # Async receivers go to the bus loop without the drainer waiting for
        # them: a receiver there may await work that needs the drainer.
        # The loop task copies the job's context, which this runs in.
        subs = self._async_subs = tuple(self.async_subs)
        coro = deliver_off_thread(self.runtime, self.report, subs, self.chain, self.override, checked=self.async_checked)
        self.runtime.loop_thread.post(coro, self._async_done)

    def _async_done(self, done: asyncio.Future[None]) -> None:
        # Runs on the loop thread. Finishing may announce a disabled
        # receiver, whose sync handlers must not run on (and block) the bus
        # loop, so that finish moves to a pool thread; any other finish is a
        # few non-blocking steps and stays here (a pool hop per job cost a
        # thread switch per event, and under a flood one thread per job).
        # Cancelled: the loop was stopped under the job (a shutdown that
        # gave up waiting). The receivers it cut short are cancelled, as a
        # cancelled ``await publish`` reports them, and the publisher still
        # gets its report.
        if done.cancelled():
            self.runtime.outcomes.cancelled_unless_done(self.report, self._async_subs, "the bus loop was stopped")
            crash = None
        else:
            crash = done.exception()
        if self.report.disabled:
            self.runtime.pool.submit(lambda: self.finish(crash))
        else:
            self.finish(crash)

    def finish(self, crash: BaseException | None, *, here: bool = False) -> None:
        """End the publish (see :meth:`Runtime.finish`), on whichever thread
        ended the job, and settle the future: with the report, or with what
        crashed the job, or -- propagation on -- with the error
        ``publish_sync`` would have raised. ``here``: see :meth:`resolve`."""
        report = self.report
        report.duration = perf_counter() - self.started
        outcome: DeliveryReport | BaseException = report if crash is None else crash
        try:
            self.runtime.finish(report, propagate=crash is None)
        except Exception as exc:  # the propagated error
            outcome = exc
        finally:
            self.resolve(outcome, here=here)

    def resolve(self, outcome: DeliveryReport | BaseException, *, here: bool = False) -> None:
        """Settle the publisher's future (once) and leave the in-flight set
        -- at once, or, ``here``, in the next lock round of the drain loop
        this thread runs (only the drain loop and a moved run's thread,
        which goes on into that loop, pass it)."""
        if self.resolved:
            return
        self.resolved = True
        try:
            if isinstance(outcome, BaseException):
                self.future.set_exception(outcome)
            else:
                self.future.set_result(outcome)
        except InvalidStateError:  # the publisher cancelled it meanwhile
            pass
        finally:
            if not here:
                self.queue.finished(self)

    def drop(self, why: str) -> None:  # only for jobs still queued
        if not self.future.done():
            self.future.set_exception(QueueFullError(f"{self.report.event!r} was dropped: {why}"))


class WorkQueue:
    """A bounded FIFO of :class:`NowaitJob`, drained by one pool thread at a time."""

    def __init__(self, pool: ThreadPool, settings: LiveSettings) -> None:
        self._pool = pool
        # The bound and the policy are read at each put, never copied: a
        # configure() applies to the next publish.
        self._settings = settings
        self.dropped = 0
        self.rejected = 0
        #: How often the drain was handed on because a blocked publisher saw
        #: no progress (see the module doc).
        self.handoffs = 0
        self.forget_jobs()
        _FORGET_AFTER_FORK.add(self)

    def forget_jobs(self) -> None:
        """(Also in a forked child.) The jobs queued or running at the fork
        are the parent's, which delivers them; the child starts empty."""
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._empty = threading.Condition(self._lock)
        self._jobs: deque[NowaitJob] = deque()
        #: The token of the drain loop now running; None while nobody drains.
        self._owner: object = None
        self._started = 0  # jobs ever taken: a blocked publisher's sign of progress
        self._handed = -1  # ``_started`` at the last handoff: one per stall, however many wait
        self._inflight: set[NowaitJob] = set()  # taken and not resolved: named by join()
        #: How many were still being delivered when the last join's bound passed.
        self.left_running = 0
        self._room_waiters = 0
        self._joiners = 0  # notify() costs microseconds even with nobody waiting

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def maxsize(self) -> int:
        return self._settings.value.queue_size

    @property
    def overflow(self) -> str:
        return self._settings.value.overflow

    def busy(self) -> bool:
        """Whether anything is queued, being drained or in flight."""
        return bool(self._jobs) or self._owner is not None or bool(self._inflight)

    def put(self, job: NowaitJob, block_timeout: float | None) -> None:
        dropped: NowaitJob | None = None
        # acquire/release rather than ``with``: on the hot paths here, a
        # ``with`` on a lock costs twice the instructions (the bound
        # __enter__ and __exit__ it makes and calls; about 1,000 a round).
        self._lock.acquire()
        try:
            if len(self._jobs) >= self._settings.value.queue_size:
                if self.overflow == "drop_oldest":
                    dropped = self._jobs.popleft()
                    self.dropped += 1
                else:
                    self._wait_for_room(block_timeout)
            self._jobs.append(job)
            owner = self._start_drain() if self._owner is None else None
        finally:
            self._lock.release()
        if dropped is not None:
            logger.warning(
                "worker queue full (%d): dropped the oldest event %s", self.maxsize, describe(dropped.report.event)
            )
            dropped.drop("the worker queue was full (overflow='drop_oldest')")
        if owner is not None:
            self._submit_drain(owner)

    def _start_drain(self) -> object:
        # Called with the lock held: from here on, only ``owner`` drains.
        owner = self._owner = object()
        return owner

    def _submit_drain(self, owner: object) -> None:
        # Urgent: the drain is what threads blocked on the bus's futures wait
        # for, so it must never wait behind them for a pool thread.
        self._pool.submit(lambda: self.drain(owner), urgent=True)

    def _wait_for_room(self, block_timeout: float | None) -> None:
        # Called with the lock held and the queue full.
        if self.overflow == "block":
            if running_loop() is not None:
                why = "the caller runs an event loop, which must not block"
            elif _JOB_OF.get() is self:
                why = "the caller is a receiver run by the worker itself"
            else:
                self._room_waiters += 1
                try:
                    if self._await_room(block_timeout):
                        return
                finally:
                    self._room_waiters -= 1
                why = f"no room within {block_timeout}s"
        else:
            why = "overflow='raise'"
        self.rejected += 1
        logger.warning("worker queue full (%d): publish rejected, %s", self.maxsize, why)
        raise QueueFullError(f"the worker queue is full ({self.maxsize} events): {why}")

    def _await_room(self, timeout: float | None) -> bool:
        """Wait (lock held) until the queue has room, at most ``timeout``.

        While waiting, no job may start for :data:`HANDOFF_SECONDS`: then the
        drainer is stuck in a receiver -- perhaps one waiting on this very
        thread -- and the drain is handed to a fresh thread.
        """
        deadline = None if timeout is None else perf_counter() + timeout
        seen, since = self._started, perf_counter()
        while len(self._jobs) >= self.maxsize:
            now = perf_counter()
            if self._started != seen:
                seen, since = self._started, now
            elif now - since >= HANDOFF_SECONDS and self._owner is not None and self._handed != seen:
                self._hand_over(now - since)
                since = now
            wait = since + HANDOFF_SECONDS - now
            if deadline is not None:
                if deadline <= now:
                    return False
                wait = min(wait, deadline - now)
            self._room.wait(wait)
        return True

    def _hand_over(self, stalled: float) -> None:
        # Called with the lock held. The old drainer finishes the job it is
        # in, sees it no longer owns the drain, and returns to the pool.
        self.handoffs += 1
        self._handed = self._started
        logger.warning(
            "worker queue full (%d) and no event started for %.1fs while a publisher waits: the queue moves to "
            "another thread (the receiver on the old one keeps running; dispatches still start in order)",
            self.maxsize,
            stalled,
        )
        self._submit_drain(self._start_drain())

    def drain(self, owner: object, done: NowaitJob | None = None) -> None:
        """The drain loop of ``owner``: run jobs until the deque is empty, or
        until the drain was handed to another owner, or the current job's run
        moved to another thread (which drains on as ``owner``, passing the
        job it ended as ``done``).

        Jobs are taken one at a time from the head of the deque, so a job
        never waits anywhere a stuck thread could keep it. The lock round
        that takes a job also takes the previous one off the in-flight set
        if it was settled meanwhile (a job with async receivers usually is
        not yet: it leaves the set when the loop settles it). A blocked
        publisher is woken when the queue is down to half, not on every job:
        waking it per job costs a thread switch per event.
        """
        # Locals: this is the worker's hot loop. (A fork replaces these
        # objects in the child only, where no drain loop runs.)
        # acquire/release rather than ``with``: see ``put``.
        lock, jobs, inflight = self._lock, self._jobs, self._inflight
        job = done
        while True:
            lock.acquire()
            try:
                if job is not None and job.resolved:
                    inflight.discard(job)
                if self._owner is not owner:
                    if self._joiners and not inflight and self._owner is None:
                        self._empty.notify_all()
                    return
                if not jobs:
                    self._owner = None
                    if self._joiners:
                        self._empty.notify_all()
                    return
                job = jobs.popleft()
                inflight.add(job)
                self._started += 1
                if self._room_waiters and len(jobs) <= self._settings.value.queue_size // 2:
                    self._room.notify_all()
            finally:
                lock.release()
            if not job.future.set_running_or_notify_cancel():
                # The publisher cancelled the future while it was queued:
                # the event is withdrawn, and recorded as any cancelled publish.
                try:
                    job.withdrawn()
                finally:
                    job.resolved = True  # the future is settled (cancelled)
                continue
            job.owner = owner
            try:
                if not job.context.run(job.dispatch):
                    return  # the run drains on from the thread it moved to
            except BaseException as exc:  # a bug of ours: fail the job, keep draining
                logger.exception("worker: dispatch of %s failed", describe(job.report.event))
                job.resolve(exc, here=True)

    def finished(self, job: NowaitJob) -> None:
        """``job``'s future was resolved."""
        with self._lock:
            self._inflight.discard(job)
            if not self._inflight and self._joiners:
                self._empty.notify_all()

    def join(self, timeout: float | None) -> int:
        """Wait until every queued and in-flight job finished, up to
        ``timeout``; then drop what is still queued. Returns how many were
        dropped. From inside a job of this queue it cannot wait for itself:
        it returns 0 at once and the worker goes on with the queue."""
        if _JOB_OF.get() is self:
            return 0
        with self._lock:
            self._joiners += 1
            try:
                self._empty.wait_for(lambda: self._owner is None and not self._inflight, timeout)
            finally:
                self._joiners -= 1
            left = list(self._jobs)
            self._jobs.clear()
            self.dropped += len(left)
            # A job settled by the drainer leaves the set in the drain's next
            # lock round: until then it is in it, but no longer running.
            running = [job.report.event for job in self._inflight if not job.resolved]
            self.left_running = len(running)
        if running:
            # Not dropped -- they may still end, and their futures resolve then.
            shown = ", ".join(describe(event) for event in running[:5])
            more = f" and {len(running) - 5} more" if len(running) > 5 else ""
            logger.warning(
                "shutdown: %d event(s) still being delivered after %.3gs, left running: %s%s",
                len(running),
                timeout,
                shown,
                more,
            )
        for job in left:
            logger.error("shutdown: dropped %s, still queued after %.3gs", describe(job.report.event), timeout)
            job.drop("the bus shut down before it was delivered")
        return len(left)


_FORGET_AFTER_FORK: weakref.WeakSet[WorkQueue] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for work_queue in list(_FORGET_AFTER_FORK):
        work_queue.forget_jobs()


os.register_at_fork(after_in_child=_after_fork_in_child)
