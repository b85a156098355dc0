"""The sync dispatch path: calling sync receivers, in order, in one thread.

:func:`deliver_sync` is the loop every sync receiver goes through, whether it
runs inline in the publisher's thread (``publish_sync``) or on a pool thread
(the worker queue, and the sync half of ``await publish``). On a pool thread
the loop runs inside a :class:`SyncRun`, which the watchdog can move to
another thread when a receiver hangs:

1. the pool thread stores ``(receiver, deadline, event, run, ...)`` in its
   watch slot before each call;
2. the watchdog sees the deadline pass, and under the slot's lock takes the
   run away from that thread (``run.slot = None``), records the timeout, and
   resumes the run at the next receiver on a fresh pool thread;
3. when the hung receiver returns, if ever, its thread finds under the same
   lock that the run is no longer its own, logs the late outcome, and goes
   back to the pool.

The lock makes "receiver returned" and "run moved" mutually exclusive, so a
receiver's outcome is recorded exactly once.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from inspect import isawaitable
from time import perf_counter
from typing import TYPE_CHECKING

from ._context import Factory, enter_context, leave_context, reset_handling, set_handling
from ._describe import describe
from ._fork import reinit
from ._report import DeliveryReport
from ._slow import SlowCheck
from ._subscription import Subscription
from ._watchdog import Watched, WatchSlot, watchdog
from ._watchdog import thread_slots as _thread_slots

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["MOVED", "SyncRun", "deliver_sync"]

logger = logging.getLogger("blinker_events")


class _Moved(list[Subscription]):
    """Returned by :func:`deliver_sync` when its run moved to another thread."""


MOVED = _Moved()
#: The deadline of a receiver watched only for being slow.
_INF = float("inf")
# Returned when there are no async receivers; never appended to.
_NO_ASYNC: list[Subscription] = []
# Orders the rare state changes of runs (start, give up, finish). One lock
# for all runs: the sections are a few attribute writes, and a lock per run
# would cost an allocation on every worker job.
_STATE_LOCK = threading.Lock()
os.register_at_fork(after_in_child=lambda: reinit(_STATE_LOCK))


def deliver_sync(
    runtime: Runtime,
    report: DeliveryReport,
    subs: tuple[Subscription, ...],
    chain: tuple[Subscription, ...],
    override: float | None,
    run: SyncRun | None = None,
    start: int = 0,
    started: float | None = None,
) -> list[Subscription]:
    """Call the sync receivers among ``subs[start:]`` in order; return the
    async ones, which the caller runs on a loop, or :data:`MOVED`. For a
    ``run``, ``start`` is its ``index``.

    ``chain`` is the causal chain at the publish (the cycle guard's input);
    ``override`` the publish's own timeout; ``started`` the publish's start,
    if the caller just read the clock. Sets ``report.duration`` to the time
    since the start when the last receiver returned. This is the publish hot path: locals
    over attributes, no allocation per receiver beyond the context frame and
    the watchdog's tuple, and the outcome bookkeeping of a success inlined.
    """
    event = report.event
    outcomes = runtime.outcomes
    default_timeout = runtime.live.value.timeout
    # Watched for being slow too (see _slow): made once per delivery, and only if on.
    slow = SlowCheck(runtime.slow_after, report, runtime.slow) if runtime.slow_after else None
    succeeded = report.succeeded.append
    results = report.results
    hooks = runtime.hooks
    # A run collects async receivers on itself: it may move threads midway.
    async_subs: list[Subscription] = _NO_ASYNC if run is None else run.async_subs
    slot: WatchSlot | None = None
    saved: Watched | None = None
    t0 = start_time = perf_counter() if started is None else started
    try:
        # Over the tuple itself: on 3.11 ``range(start, len(subs))`` costs
        # ~1,100 instructions per delivery more (range() does its length
        # arithmetic on int objects). A run's index (where a move resumes)
        # is ``start`` on entry and counts the receivers taken.
        for sub in subs if not start else subs[start:]:
            if run is not None:
                run.index += 1
            if not sub.active:
                continue
            if (sub.disabled or chain) and not runtime.admit(report, sub, chain):
                continue
            if sub.is_async:
                if async_subs is _NO_ASYNC:
                    async_subs = []
                async_subs.append(sub)
                continue
            fn = sub._fn
            if fn is None:
                fn = sub.callback
                if fn is None:
                    continue
            timeout = override or sub.timeout or default_timeout  # Runtime.timeout_for, inlined
            if timeout is not None or slow is not None:
                if slot is None:
                    slot = _thread_slots.slot or watchdog.slot()
                    saved = slot.current
                    if not watchdog.running:  # it died: the deadline needs it
                        watchdog.ensure_running()
                watched: Watched = (sub, t0 + (timeout or _INF), event, run, saved, t0, slow)
                slot.current = watched
            if hooks is not None:
                fn = hooks.receiver(event, sub, fn, timeout)
            token = set_handling((event, chain + (sub,) if chain else sub._chain))
            error: BaseException | None = None
            try:
                result = sub._invoke_plain(fn, event) if sub.plain else fn(event)
                if result is not None and isawaitable(result):
                    error = _unawaited(sub, result)
            except Exception as exc:
                error = exc
            except BaseException as exc:
                # Inline, KeyboardInterrupt and the like are the caller's; on
                # a pool thread nobody would see them, so they are reported.
                if run is None:
                    raise
                error = exc
            finally:
                reset_handling(token)
            t1 = perf_counter()
            if timeout is not None or slow is not None:
                assert slot is not None
                if run is None:
                    slot.current = saved
                elif not run.still_mine(slot, watched, error):
                    return MOVED
            if error is not None:
                outcomes.failed(report, sub, error)
            elif timeout is not None and t1 - t0 > timeout:
                outcomes.timed_out(report, sub, timeout)
            else:
                succeeded(sub)
                if results is not None:
                    results.append((sub, result))
                if sub.failures:
                    outcomes.reset(sub)
            t0 = t1
    finally:
        if slot is not None:
            slot.current = saved
    report.duration = t0 - start_time
    return async_subs


class SyncRun:
    """Sync receivers of one delivery, running on pool threads.

    ``done(run)`` is called exactly once: on whichever thread finishes the
    run, or by whoever gives it up. ``then`` runs after it on a thread the
    run moved to, so the worker queue's drain loop can continue there.
    Async receivers met on the way collect in ``async_subs`` for the caller.

    With ``movable=False`` (asgiref's thread-sensitive executor, whose single
    thread cannot be replaced) the run is given up instead of moved: when a
    receiver hangs, or when the run has not even started by the first
    receiver's deadline because that thread is still stuck in an earlier one.
    The receivers left are reported as skipped ("abandoned") and the waiter
    is released; a given-up run never starts later.
    """

    __slots__ = (
        "async_checked",
        "async_subs",
        "chain",
        "context",
        "done",
        "finished",
        "given_up",
        "index",
        "movable",
        "override",
        "report",
        "runtime",
        "slot",
        "subs",
        "then",
    )

    def __init__(
        self,
        runtime: Runtime,
        report: DeliveryReport,
        subs: tuple[Subscription, ...],
        chain: tuple[Subscription, ...],
        override: float | None,
        context: contextvars.Context,
        done: Callable[[SyncRun], None],
        *,
        movable: bool = True,
        then: Callable[[], None] | None = None,
    ) -> None:
        self._begin(runtime, report, override, context, movable)
        self.subs = subs
        self.chain = chain
        self.done = done
        self.then = then
        self.async_subs: list[Subscription] = []

    def _begin(
        self,
        runtime: Runtime,
        report: DeliveryReport,
        override: float | None,
        context: contextvars.Context,
        movable: bool,
    ) -> None:
        """The state every run starts in; the rest (``subs``, ``chain``,
        ``async_subs``, ``done``, ``then``) is a subclass's to set when it
        knows it (see :class:`~._job.NowaitJob`)."""
        self.runtime = runtime
        self.report = report
        self.override = override
        self.context = context
        self.movable = movable
        self.index = 0
        self.slot: WatchSlot | None = None
        #: Whether ``async_subs`` passed the disabled and cycle checks (not
        #: when a dispatch context that could not be entered cut the run short).
        self.async_checked = True
        self.finished = self.given_up = False

    def run(self) -> bool:
        """Run in the calling thread; False if the run moved to another thread."""
        return self.context.run(self._run)

    def run_here(self) -> bool:
        """:meth:`run`, for a caller already inside ``self.context``."""
        return self._run()

    def _resume(self) -> None:
        # The first thread may still be inside ``self.context`` (stuck in
        # the receiver), and a context can be entered by one thread only.
        if self.context.copy().run(self._run) and self.then is not None:
            self.then()

    def _run(self) -> bool:
        # Only an unmovable run can be given up or finished by the watchdog,
        # so only it needs the state lock; a movable run changes hands solely
        # through its slot's lock, inside deliver_sync (see the module doc).
        slot = _thread_slots.slot
        if slot is None or not watchdog.running:  # the first run on this thread, or the watchdog died
            slot = watchdog.slot()
        if self.movable:
            self.slot = slot
        else:
            with _STATE_LOCK:
                if self.given_up:
                    return False
                self.slot = slot
        around = self.runtime.dispatch_context
        if around is None:
            found = deliver_sync(self.runtime, self.report, self.subs, self.chain, self.override, self, self.index)
        else:
            found = self._deliver_within(around)
        if found is MOVED:
            return False
        if not self.movable:
            with slot.lock:
                if self.slot is not slot:  # given up by the watchdog meanwhile
                    return False
        self.slot = None
        self._finish()
        return True

    def _deliver_within(self, factory: Factory) -> list[Subscription]:
        """:func:`deliver_sync` inside the bus's dispatch context. A context
        that cannot be entered skips the receivers left; one that raises
        on leaving is reported after them (see :mod:`._context`)."""
        outcomes = self.runtime.outcomes
        manager, error = enter_context(factory)
        if manager is None:
            # Only the sync receivers needed this entry: async ones left go
            # on to the bus loop, which enters the context for them afresh
            # (and applies their disabled and cycle checks, not done here).
            assert error is not None
            left = self.subs[self.index :]
            outcomes.context_failed(self.report, error, "entering", [sub for sub in left if not sub.is_async])
            self.async_subs.extend(sub for sub in left if sub.is_async and sub.active)
            self.async_checked = False
            self.index = len(self.subs)
            return self.async_subs
        try:
            found = deliver_sync(self.runtime, self.report, self.subs, self.chain, self.override, self, self.index)
        except BaseException as exc:  # a bug of ours: still leave the context
            leave_context(manager, exc)
            raise
        error = leave_context(manager)
        if error is not None:
            if found is MOVED:  # the report is another thread's now
                event = repr(self.report.event)
                logger.error("the dispatch context raised leaving it around %s", event, exc_info=error)
            else:
                outcomes.context_failed(self.report, error, "leaving")
        return found

    def _finish(self) -> None:
        if self.movable:
            self.finished = True
        else:
            with _STATE_LOCK:
                if self.finished:
                    return
                self.finished = True
        self.done(self)

    def give_up_unstarted(self) -> None:
        """Release the waiter of a run that has not started yet."""
        with _STATE_LOCK:
            if self.slot is not None or self.index or self.finished:
                return
            self.given_up = True
        for sub in self.subs:
            self.report._add_skip(sub, "abandoned")
        logger.warning(
            "%d receiver(s) of %s abandoned: the executor's thread is busy", len(self.subs), repr(self.report.event)
        )
        self._finish()

    def still_mine(self, slot: WatchSlot, watched: Watched, error: BaseException | None) -> bool:
        """Called by the pool thread when a watched receiver returned: True
        if the run is still this thread's (and the slot is cleared under the
        lock, so the watchdog cannot move the run after this answer)."""
        # acquire/release rather than ``with``, once per receiver: a ``with``
        # on a lock makes and calls a bound __enter__ and __exit__, about
        # 1,000 instructions more.
        lock = slot.lock
        lock.acquire()
        try:
            if self.slot is slot:
                slot.current = watched[4]
                return True
        finally:
            lock.release()
        self.runtime.pool.note_stuck(-1)
        outcome = f"raised {describe(error)}" if error is not None else "returned"
        logger.warning(
            "receiver %s %s after its timeout handling %s; its run had moved on",
            watched[0].name,
            outcome,
            repr(watched[2]),
            exc_info=error,
        )
        return False

    def overran(self, slot: WatchSlot, watched: Watched) -> None:
        """Called by the watchdog: the receiver in ``watched`` is past its deadline."""
        with slot.lock:
            if self.slot is not slot or not _watching(slot, watched):
                return  # it returned in the meantime
            self.slot = None
        sub = watched[0]
        self.runtime.pool.note_stuck(+1)
        self.runtime.outcomes.timed_out(self.report, sub, self.runtime.timeout_for(sub, self.override))
        if self.movable:
            self.runtime.pool.submit(self._resume)
            return
        for left in self.subs[self.index :]:
            self.report._add_skip(left, "abandoned")
        self.index = len(self.subs)
        self._finish()


def _unawaited(sub: Subscription, result: Awaitable[object]) -> TypeError:
    """A receiver taken for sync returned an awaitable (say, a lambda calling
    a coroutine function). Running it here is not possible; dropping it
    silently would lose the work, so it is closed and reported."""
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return TypeError(
        f"receiver {sub.name} returned an awaitable but was subscribed as sync; subscribe the coroutine "
        "function itself (or mark the callable with inspect.markcoroutinefunction)"
    )


def _watching(slot: WatchSlot, watched: Watched) -> bool:
    """Whether ``watched`` is still among what ``slot`` watches."""
    current = slot.current
    while current is not None:
        if current is watched:
            return True
        current = current[4]
    return False
