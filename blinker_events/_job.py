"""A job of the worker queue (:mod:`._worker`): one ``publish_nowait``,
from the moment it is queued until its future is settled.

A job is also the run of its sync receivers -- a :class:`~._sync.SyncRun`,
which the watchdog can move to another thread when a receiver hangs -- so a
queued event costs one object for both, and the run's end settles the job
without a callback. What a job holds while it waits is kept to what it
needs then: under a flood the queue holds thousands, and each object among
them is one more for the cyclic collector to visit until the job runs.
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import Future, InvalidStateError
from contextvars import ContextVar
from time import perf_counter
from typing import TYPE_CHECKING, Protocol

from ._async import deliver_off_thread
from ._context import get_handling
from ._errors import QueueFullError
from ._report import DeliveryReport
from ._sync import SyncRun

if TYPE_CHECKING:
    from ._runtime import Runtime
    from ._subscription import Subscription

__all__ = ["JOB_OF", "JobQueue", "NowaitJob"]

#: The queue whose job the running code belongs to, if any (see
#: :mod:`._worker`: code that is part of a job must not wait for the queue).
JOB_OF: ContextVar[object] = ContextVar("blinker_events.job_of", default=None)


class JobQueue(Protocol):
    """What a job asks of the queue that holds it (a :class:`~._worker.WorkQueue`)."""

    def drain(self, owner: object, done: NowaitJob | None = None) -> None: ...

    def finished(self, job: NowaitJob) -> None: ...


class NowaitJob(SyncRun):
    """One ``publish_nowait``: the event's report, the publisher's context,
    the future the publisher holds -- and, from its dispatch on, the run of
    its sync receivers (see the module doc)."""

    __slots__ = ("_async_subs", "future", "owner", "queue", "resolved", "started")

    started: float
    _async_subs: tuple[Subscription, ...]

    def __init__(
        self,
        runtime: Runtime,
        queue: JobQueue,
        report: DeliveryReport,
        override: float | None,
        context: contextvars.Context,
        future: Future[DeliveryReport],
    ) -> None:
        # Not SyncRun.__init__: ``subs``, ``chain`` and ``async_subs`` are
        # set at dispatch, when the event is routed; ``done`` and ``then`` are
        # not used: the job overrides the two methods that read them.
        self._begin(runtime, report, override, context, True)
        self.queue = queue
        self.future = future
        self.resolved = False
        #: The drain that took this job; a run moved off a hung receiver
        #: drains on as that owner (and stops if the drain moved meanwhile).
        self.owner: object = None

    def dispatch(self) -> bool:
        """Run the job on the drainer thread, inside ``self.context``;
        False if the run moved to another thread."""
        # Mark the context as this queue's job's (see JOB_OF).
        JOB_OF.set(self.queue)
        self.started = perf_counter()
        # Routed now, not at publish: who receives it is who listens when
        # its turn comes.
        report = self.report
        route = self.runtime.route(report.event)
        if route.collect:
            report.results = []
        self.subs = route.subs
        # Made now, not at publish: it lives only while the job runs, rather
        # than as one more object per queued job (see the module doc).
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
            self.finish(None, True)  # positional: a keyword costs more per call
            return
        # Async receivers go to the bus loop without the drainer waiting for
        # them: a receiver there may await work that needs the drainer.
        # The loop task copies the job's context, which this runs in.
        subs = self._async_subs = tuple(self.async_subs)
        checked = self.async_checked
        coro = deliver_off_thread(self.runtime, self.report, subs, self.chain, self.override, checked=checked)
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

    def finish(self, crash: BaseException | None, here: bool = False) -> None:
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
            self.resolve(outcome, here)

    def resolve(self, outcome: DeliveryReport | BaseException, here: bool = False) -> None:
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

    def drop(self, why: str) -> None:
        """Fail the future of a job taken off the queue undelivered; the
        queue claimed it first (``set_running_or_notify_cancel``), so its
        publisher can no longer cancel it."""
        try:
            described = repr(self.report.event)
        except BaseException:  # KeyboardInterrupt, which describe passes on: the future fails all the same
            self.future.set_exception(QueueFullError(f"event {self.report.event.event_id} was dropped: {why}"))
            raise
        self.future.set_exception(QueueFullError(f"{described} was dropped: {why}"))
