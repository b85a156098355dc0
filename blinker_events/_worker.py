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

Two locks, so that the publishers and the drainer never wait for each other
in a flood (one lock shared by both made them take turns on it, each turn a
thread switch: it halved the rate):

- the *put lock* orders the publishers: only they add to the deque, one at
  a time under it, so the bound holds exactly (the drainer only ever makes
  the deque shorter); the overflow policies and the wait for room are
  under it;
- the *drain lock* orders the drain: who owns it, taking a job off the head,
  the in-flight set, and the hand-off.

The deque itself is safe to append to and pop from on different threads.
Where both locks are taken (a hand-off, ``join``), the put lock comes first.
A publisher starts the drain when it finds no owner after its append; the
drainer, when it finds the deque empty, clears the owner and then looks at
the deque once more, taking the drain back if a job arrived meanwhile -- a
publisher that appended then may have seen the old owner, and left the job
to it.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from time import perf_counter

from ._describe import describe, pass_interrupt
from ._errors import QueueFullError
from ._interop import running_loop
from ._job import JOB_OF, NowaitJob
from ._settings import LiveSettings
from ._threads import ThreadPool

__all__ = ["WorkQueue"]

logger = logging.getLogger("blinker_events")

#: How long a publisher blocked on the full queue waits for any job to
#: start before it hands the drain to a fresh thread (see the module doc).
HANDOFF_SECONDS = 1.0


class WorkQueue:
    """A bounded FIFO of :class:`NowaitJob`, drained by one pool thread at a time."""

    def __init__(self, pool: ThreadPool, settings: LiveSettings) -> None:
        self._pool = pool
        # The bound and the policy are read at each put, never copied: a
        # configure() applies to the next publish.
        self._settings = settings
        # A bigger bound is room: publishers waiting for it look again.
        settings.watch(self._make_room)
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
        self._put_lock = threading.Lock()  # see the module doc
        self._room = threading.Condition(self._put_lock)
        self._lock = threading.Lock()  # the drain lock
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
        withdrawn: NowaitJob | None = None
        jobs = self._jobs
        # acquire/release rather than ``with``: on the hot paths here, a
        # ``with`` on a lock costs twice the instructions (the bound
        # __enter__ and __exit__ it makes and calls; about 1,000 a round).
        self._put_lock.acquire()
        try:
            if len(jobs) >= self._settings.value.queue_size:
                if self.overflow == "drop_oldest":
                    try:
                        oldest = jobs.popleft()
                    except IndexError:  # the drainer took the rest meanwhile: there is room
                        pass
                    else:
                        # Claimed, it can no longer be cancelled; one its
                        # publisher cancelled was withdrawn, not dropped.
                        if oldest.future.set_running_or_notify_cancel():
                            dropped = oldest
                            self.dropped += 1
                        else:
                            withdrawn = oldest
                else:
                    self._wait_for_room(block_timeout)
            jobs.append(job)
        finally:
            self._put_lock.release()
        try:
            if dropped is not None:
                # Its future fails first: describing the event may raise
                # KeyboardInterrupt (describe passes it on), and the drain
                # is started whatever that does.
                dropped.drop("the worker queue was full (overflow='drop_oldest')")
                logger.warning(
                    "worker queue full (%d): dropped the oldest event %s", self.maxsize, describe(dropped.report.event)
                )
            elif withdrawn is not None:
                self._withdraw(withdrawn)
        finally:
            if self._owner is None:  # read without the lock: see the module doc
                self._start_drain()

    def _start_drain(self) -> None:
        # A publisher's, after its append, when it saw nobody draining.
        self._lock.acquire()
        try:
            if self._owner is not None or not self._jobs:  # started, or taken back, meanwhile
                return
            owner = self._owner = object()  # from here on, only ``owner`` drains
        finally:
            self._lock.release()
        self._submit_drain(owner)

    def _submit_drain(self, owner: object) -> None:
        # Urgent: the drain is what threads blocked on the bus's futures wait
        # for, so it must never wait behind them for a pool thread.
        self._pool.submit(lambda: self.drain(owner), urgent=True)

    def _wait_for_room(self, block_timeout: float | None) -> None:
        # Called with the put lock held and the queue full.
        if self.overflow == "block":
            if running_loop() is not None:
                why = "the caller runs an event loop, which must not block"
            elif JOB_OF.get() is self:
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
        """Wait (put lock held) until the queue has room, at most ``timeout``.

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
        # Called with the put lock held. The old drainer finishes the job it
        # is in, sees it no longer owns the drain, and returns to the pool.
        with self._lock:
            if self._owner is None or self._handed == self._started:  # it ended, or was handed, meanwhile
                return
            self.handoffs += 1
            self._handed = self._started
            owner = self._owner = object()
        logger.warning(
            "worker queue full (%d) and no event started for %.1fs while a publisher waits: the queue moves to "
            "another thread (the receiver on the old one keeps running; dispatches still start in order)",
            self.maxsize,
            stalled,
        )
        self._submit_drain(owner)

    def drain(self, owner: object, done: NowaitJob | None = None) -> None:
        """The drain loop of ``owner``: run jobs until the deque is empty, or
        until the drain was handed to another owner, or the current job's run
        moved to another thread (which drains on as ``owner``, passing the
        job it ended as ``done``).

        Jobs are taken one at a time from the head of the deque, so a job
        never waits anywhere a stuck thread could keep it. The lock round
        that takes a job also takes the previous one off the in-flight set
        if it was settled meanwhile (a job with async receivers usually is
        not yet: it leaves the set when the loop settles it). A publisher
        blocked on the full queue is woken by the job taken, which made room
        for it (waking it only once the queue was down to half, as this loop
        once did, let a publisher with a short timeout be refused while a
        slot stood free; with the two locks, waking it costs no rate).
        """
        # Locals: this is the worker's hot loop. (A fork replaces these
        # objects in the child only, where no drain loop runs.)
        # acquire/release rather than ``with``: see ``put``.
        lock, jobs, inflight = self._lock, self._jobs, self._inflight
        job = done
        while True:
            taken: NowaitJob | None = None
            wake = False
            lock.acquire()
            try:
                if job is not None and job.resolved:
                    inflight.discard(job)
                if self._owner is not owner:
                    if self._joiners and not inflight and self._owner is None:
                        self._empty.notify_all()
                    return
                try:
                    taken = jobs.popleft()
                except IndexError:
                    self._owner = None
                    if self._joiners:
                        self._empty.notify_all()
                else:
                    inflight.add(taken)
                    self._started += 1
                    wake = bool(self._room_waiters)  # the job taken made room
            finally:
                lock.release()
            if taken is None:
                if jobs and self._take_back(owner):  # a job arrived as the drain ended: see the module doc
                    job = None
                    continue
                return
            job = taken
            if wake:
                self._make_room()
            if not job.future.set_running_or_notify_cancel():
                self._withdraw(job)
                job.resolved = True  # the future is settled (cancelled)
                continue
            job.owner = owner
            try:
                if not job.context.run(job.dispatch):
                    return  # the run drains on from the thread it moved to
            except BaseException as exc:  # a bug of ours: fail the job, keep draining
                logger.exception("worker: dispatch of %s failed", describe(job.report.event))
                job.resolve(exc, here=True)

    @staticmethod
    def _withdraw(job: NowaitJob) -> None:
        """``job``'s publisher cancelled its future while it was queued: the
        event is withdrawn, and recorded as any cancelled publish."""
        try:
            job.withdrawn()
        except BaseException as exc:  # as a dispatch's: logged, and the drain (or the publish) goes on
            pass_interrupt(exc)  # a Ctrl-C on the main thread (a publisher's) is its own
            logger.exception("worker: recording the withdrawn %s failed", describe(job.report.event))

    def _take_back(self, owner: object) -> bool:
        """Own the drain again as ``owner``, if nobody took it since it was
        left and there is a job to run."""
        with self._lock:
            if self._owner is not None or not self._jobs:
                return False
            self._owner = owner
            return True

    def _make_room(self) -> None:
        # The drainer's, and a settings change's, with no lock held (the
        # put lock comes first).
        with self._put_lock:
            self._room.notify_all()

    def finished(self, job: NowaitJob) -> None:
        """``job``'s future was resolved."""
        self._lock.acquire()  # not ``with``: see put (once per job with async receivers)
        try:
            self._inflight.discard(job)
            if not self._inflight and self._joiners:
                self._empty.notify_all()
        finally:
            self._lock.release()

    def _idle(self) -> bool:
        # Called with the drain lock held.
        return self._owner is None and not self._inflight and not self._jobs

    def join(self, timeout: float | None) -> int:
        """Wait until every queued and in-flight job finished, up to
        ``timeout``; then drop what is still queued. Returns how many were
        dropped. From inside a job of this queue it cannot wait for itself:
        it returns 0 at once and the worker goes on with the queue."""
        if JOB_OF.get() is self:
            return 0
        deadline = None if timeout is None else perf_counter() + timeout
        while True:
            with self._lock:
                self._joiners += 1
                try:
                    wait = None if deadline is None else max(deadline - perf_counter(), 0.0)
                    idle = self._empty.wait_for(self._idle, wait)
                finally:
                    self._joiners -= 1
            # What is left, under both locks: no publisher adds to it and no
            # drainer takes from it meanwhile. A publish that came in
            # between the two lock rounds, before the bound, is waited for
            # too rather than dropped.
            with self._put_lock, self._lock:
                if idle and not self._idle():
                    continue
                queued = list(self._jobs)
                self._jobs.clear()
                if queued and self._room_waiters:  # their slots are free now
                    self._room.notify_all()
                # Each claimed, as the drop_oldest policy claims it (see put);
                # one its publisher cancelled is withdrawn, not dropped.
                left: list[NowaitJob] = []
                withdrawn: list[NowaitJob] = []
                for job in queued:
                    (left if job.future.set_running_or_notify_cancel() else withdrawn).append(job)
                self.dropped += len(left)
                # A job settled by the drainer leaves the set in the drain's
                # next lock round: until then it is in it, but no longer running.
                running = [job.report.event for job in self._inflight if not job.resolved]
                self.left_running = len(running)
                break
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
        for job in withdrawn:
            self._withdraw(job)
        for job in left:
            logger.error("shutdown: dropped %s, still queued after %.3gs", describe(job.report.event), timeout)
            job.drop("the bus shut down before it was delivered")
        return len(left)


_FORGET_AFTER_FORK: weakref.WeakSet[WorkQueue] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for work_queue in list(_FORGET_AFTER_FORK):
        work_queue.forget_jobs()


os.register_at_fork(after_in_child=_after_fork_in_child)
