"""The async dispatch path: async receivers run concurrently on a loop, each
under its own timeout.

Every receiver becomes a task at once, so a publish to N slow receivers takes
about one timeout, not N. On Python 3.12+ tasks start *eagerly*: a receiver
that finishes without suspending runs to completion inside ``create_task``
and never touches the scheduler or a timer, which is most of them. Tasks that
are still running are awaited together until the earliest deadline, those
past it are cancelled, and so on until none is left.

A cancelled receiver may take a while to unwind (or ignore the cancellation);
the publish does not wait for that. The bus keeps the task referenced (see
:func:`~._loop_thread.hold_until_done`) until it ends and logs whatever it raises late, so
nothing is lost.

Cancelling the publisher cancels the receivers it runs: the one in its own
task, and the tasks it started. They are recorded as ``cancelled`` (not
failed: a client hanging up must not disable a healthy receiver), and the
cancellation goes on up to the publisher's caller.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import types
from collections.abc import Callable, Generator
from time import perf_counter
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from ._context import enter_context, leave_context, reset_handling, set_handling
from ._outcomes import PUBLISH_CANCELLED
from ._report import DeliveryReport
from ._slow import watch_async
from ._subscription import Subscription
from ._tasks import EAGER_TASKS, NO_DEADLINE, Running, Tracker, counted, factory_task, settle, task_maker
from ._watchdog import AsyncDeadline, watchdog

if TYPE_CHECKING:
    from ._events import Event
    from ._runtime import Runtime

__all__ = ["deliver_async", "deliver_off_thread", "deliver_one"]

logger = logging.getLogger("blinker_events")

#: What a receiver's first step "yielded" when it finished in that step.
_FINISHED = object()


async def deliver_async(
    runtime: Runtime,
    report: DeliveryReport,
    subs: tuple[Subscription, ...],
    chain: tuple[Subscription, ...],
    override: float | None,
    *,
    checked: bool = False,
    own_tasks: bool = False,
) -> None:
    """Run the async receivers in ``subs`` on the running loop and record
    their outcomes in ``report``. ``checked`` says the sync path already
    applied the disabled and cycle checks to ``subs``. A single receiver
    runs in the caller's own task (:func:`deliver_one`) unless
    ``own_tasks``: then it too gets a task, so that one ignoring its
    cancellation cannot hold the caller past its deadline or a stop of
    the loop."""
    if len(subs) == 1 and not own_tasks:
        await deliver_one(runtime, report, subs[0], chain, override, checked=checked)
        return
    loop = asyncio.get_running_loop()
    event = report.event
    running: list[Running] = []
    started = loop.time()  # every receiver's deadline counts from the publish
    earliest = NO_DEADLINE  # the earliest of their deadlines
    default_timeout = runtime.live.value.timeout
    slow_after = runtime.slow_after  # see _slow; the watchdog forgets each task as it ends
    make_task, factory = task_maker(loop)
    tracker = Tracker()
    hooks = runtime.hooks
    refused_at = -1  # where in report.results the first receiver that failed to start went
    for sub in subs:
        if checked or (sub.active and not sub.disabled and not chain):
            fn = sub._fn or sub.callback  # the common case, without a call
        else:
            fn = _ready(runtime, report, sub, chain)
        if fn is None:
            continue
        timeout = override or sub.timeout or default_timeout  # Runtime.timeout_for, inlined: per receiver
        if hooks is not None:
            fn = hooks.receiver(event, sub, fn, timeout)
        # The task copies the context now, so the receiver (and whatever it
        # publishes, even from tasks of its own) carries this chain.
        token = set_handling((event, chain + (sub,) if chain else sub._chain))
        try:
            awaitable = sub._invoke_plain(fn, event) if sub.plain else fn(event)
            if factory:
                task = factory_task(make_task, awaitable, sub.name)
                tracker.left += 1
                task.add_done_callback(functools.partial(tracker.task_done, awaitable))
            else:
                step = counted(tracker, awaitable)
                step.send(None)  # primed: see _tasks.counted
                tracker.left += 1
                try:
                    task = make_task(step, name=sub.name)
                except BaseException:  # the tracker is told, the receiver closed
                    step.close()
                    raise
        except BaseException as exc:  # calling the receiver, or its task factory, raised
            try:
                _own_or_raise(runtime, exc)
            except BaseException:
                # An interrupt that goes to the caller (on 3.12+ also from a
                # task's eager first step) ends the publish here: the tasks
                # it started go with it rather than run on unreported.
                for started_sub, started_task, _, _ in running:
                    if not started_task.done():
                        started_task.cancel()
                        runtime.keep_until_done(started_task, started_sub, event, "after its publish was interrupted")
                raise
            if refused_at < 0 and report.results is not None:
                refused_at = len(report.results)
            runtime.outcomes.ended(report, sub, exc)
            continue
        finally:
            reset_handling(token)
        if timeout is None:
            running.append((sub, task, NO_DEADLINE, None))
        else:
            deadline = started + timeout
            running.append((sub, task, deadline, timeout))
            if deadline < earliest:  # noqa: PLR1730 - cheaper than a min() call
                earliest = deadline
        if slow_after is not None and not task.done():
            if EAGER_TASKS and not factory:  # its first step ran just now: it suspended
                watch_async(sub, event, awaitable, slow_after, report, runtime.slow, task)
            else:  # from its first suspension, as the docs say: after its first step
                loop.call_soon(_watch_if_running, task, sub, event, awaitable, slow_after, report, runtime)
    try:
        if running:
            await settle(runtime, report, running, loop, tracker, earliest)
    finally:
        if refused_at >= 0:  # its result went in before those of the receivers before it
            report._sort_results(refused_at)


async def deliver_off_thread(
    runtime: Runtime,
    report: DeliveryReport,
    subs: tuple[Subscription, ...],
    chain: tuple[Subscription, ...],
    override: float | None,
    *,
    checked: bool = True,
) -> None:
    """:func:`deliver_async` of receivers the sync path met (and, if
    ``checked``, already applied the disabled and cycle checks to), on the
    bus loop, inside the bus's dispatch context if one is set. Each receiver
    has a task of its own, even a single one: nobody there shares its task
    with the receiver as a publisher awaiting it does, and the delivery must
    end at the deadlines, and when a shutdown stops the loop, whatever a
    receiver does with its cancellation. A context
    that cannot be entered skips them; one that raises on leaving is
    reported after them (see :mod:`._context`)."""
    factory = runtime.dispatch_context
    if factory is None:
        await deliver_async(runtime, report, subs, chain, override, checked=checked, own_tasks=True)
        return
    manager, error = enter_context(factory)
    if manager is None:
        assert error is not None
        runtime.outcomes.context_failed(report, error, "entering", subs)
        return
    try:
        await deliver_async(runtime, report, subs, chain, override, checked=checked, own_tasks=True)
    except BaseException as exc:  # cancelled: the bus loop stops
        error = leave_context(manager, exc)
        raise
    else:
        error = leave_context(manager)
    finally:
        if error is not None:
            runtime.outcomes.context_failed(report, error, "leaving")


def _own_or_raise(runtime: Runtime, exc: BaseException) -> None:
    """Re-raise what belongs to the caller rather than to the report.

    KeyboardInterrupt, SystemExit and the like raised by a receiver running
    in the caller's own task are the caller's, as with a direct call. On the
    bus loop there is no caller to give them to, so they are reported as the
    receiver's failure, like any exception on a pool thread.
    """
    if not isinstance(exc, (Exception, asyncio.CancelledError)) and not runtime.loop_thread.in_loop_thread():
        raise exc


def _watch_if_running(
    task: asyncio.Task[Any],
    sub: Subscription,
    event: Event,
    awaitable: Any,
    slow_after: float,
    report: DeliveryReport,
    runtime: Runtime,
) -> None:
    """Watch a receiver task for being slow once it took its first step --
    scheduled right after the task's own first step, which it follows on
    the loop -- unless it ended in that step."""
    if not task.done():
        watch_async(sub, event, awaitable, slow_after, report, runtime.slow, task)


def _ready(
    runtime: Runtime, report: DeliveryReport, sub: Subscription, chain: tuple[Subscription, ...]
) -> Callable[..., Any] | None:
    """The receiver to call, or None when it must not run (recorded as such)."""
    if not sub.active or not runtime.admit(report, sub, chain):
        return None
    return sub.callback


async def deliver_one(
    runtime: Runtime,
    report: DeliveryReport,
    sub: Subscription,
    chain: tuple[Subscription, ...],
    override: float | None,
    *,
    checked: bool = False,
) -> None:
    """The single-receiver fast path: run the receiver in the publishing
    task itself, as blinker's ``send_async`` does -- no task, no timer.

    The receiver's first step runs right here; most receivers finish in it,
    and then there is nothing to time. One that suspends is awaited on (by
    :func:`_delegate`, which is ``await`` spelled out, still in this task),
    and the watchdog keeps its deadline and cancels this task at it. That
    cancellation is told apart from one aimed at the publisher by the task's
    cancel count, as ``asyncio.timeout`` does -- with its limit: a receiver
    that keeps running after the cancellation holds the publisher until it
    ends (with several receivers each has a task of its own and the
    publisher never waits past the deadlines). The receiver shares the
    publisher's task and context, as with ``send_async``.
    """
    if checked or (sub.active and not sub.disabled and not chain):
        fn = sub._fn or sub.callback  # the common case, without a call
    else:
        fn = _ready(runtime, report, sub, chain)
    if fn is None:
        return
    event = report.event
    outcomes = runtime.outcomes
    timeout = override or sub.timeout or runtime.live.value.timeout  # Runtime.timeout_for, inlined: hot path
    if (hooks := runtime.hooks) is not None:
        fn = hooks.receiver(event, sub, fn, timeout)
    task: asyncio.Task[Any] | None = None
    deadline: AsyncDeadline | None = None
    cancelling = 0
    error: BaseException | None = None
    result: Any = None
    token = set_handling((event, chain + (sub,) if chain else sub._chain))
    try:
        awaitable = sub._invoke_plain(fn, event) if sub.plain else fn(event)
        is_coroutine = type(awaitable) is CoroutineType
        if is_coroutine and report.results is None:
            # The first step, driven by a for loop: a coroutine that returns
            # None ends the loop without a StopIteration being raised and
            # caught, which costs ~1,400 instructions on 3.11, as much as the
            # rest of running the receiver. A value it returns is dropped,
            # but only a publish that collects results (the other branch)
            # keeps one.
            steps: Any = awaitable.__await__()
            for yielded in steps:  # noqa: B007 - read after the break
                break
            else:
                yielded = _FINISHED
        else:
            steps = awaitable if is_coroutine else awaitable.__await__()
            try:
                yielded = steps.send(None)
            except StopIteration as stop:
                result = stop.value
                yielded = _FINISHED
        if yielded is not _FINISHED:  # it suspended (else there is nothing to time)
            task = asyncio.current_task()
            if task is not None:  # None only if someone drives this coroutine by hand
                cancelling = task.cancelling()
            if task is not None and timeout is not None:
                deadline = AsyncDeadline(sub, perf_counter() + timeout, event, asyncio.get_running_loop(), task)
                watchdog.awaited.add(deadline)
                watchdog.ensure_running()
            slow = None  # watched for being slow from this first suspension on, if on
            slow_after = runtime.slow_after  # the setting, as the runtime follows it for the paths
            if task is not None and slow_after is not None:
                slow = watch_async(sub, event, awaitable, slow_after, report, runtime.slow)
            try:
                result = await _delegate(steps, yielded)
            finally:  # here, not below: the receiver that never suspends pays nothing for it
                if slow is not None:
                    watchdog.slow_tasks.discard(slow)
    except BaseException as exc:
        _own_or_raise(runtime, exc)
        error = exc
    finally:
        if deadline is not None:
            watchdog.awaited.discard(deadline)
        try:  # noqa: SIM105 - free when nothing raises; suppress() costs a call on this hot path
            reset_handling(token)
        except ValueError:
            # Not in the task's context: the coroutine is being closed from
            # outside, its task dropped by a loop closed under it. That
            # context is gone; there is nothing to restore.
            pass
    if task is None:  # it never suspended, so nothing can have cancelled it
        if error is None:  # OutcomeRecorder.succeeded, inlined: the A1 hot path
            report.succeeded.append(sub)
            if report.results is not None:
                report.results.append((sub, result))
            if sub.failures:
                outcomes.reset(sub)
        else:
            outcomes.ended(report, sub, error)
        return
    expired = deadline is not None and deadline.expired
    if expired:
        task.uncancel()  # take back the watchdog's cancellation
    if task.cancelling() > cancelling:
        # The publisher itself was cancelled meanwhile: whatever the
        # receiver did with that, the cancellation goes on up.
        outcomes.cancelled(report, sub, PUBLISH_CANCELLED)
        if error is not None and not isinstance(error, asyncio.CancelledError):
            logger.error("receiver %s raised while being cancelled with %s", sub.name, repr(event), exc_info=error)
        raise asyncio.CancelledError
    if expired:
        outcomes.timed_out(report, sub, timeout)
        if error is not None and not isinstance(error, asyncio.CancelledError):
            logger.error("receiver %s raised after its timeout handling %s", sub.name, repr(event), exc_info=error)
    else:
        outcomes.ended(report, sub, error, result)


@types.coroutine
def _delegate(steps: Any, yielded: Any) -> Generator[Any, Any, Any]:
    """``await`` for an awaitable whose first step already ran: pass what it
    yields up to the task, and what the task sends or throws back down."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            steps.close()
            raise
        except BaseException as exc:
            try:
                yielded = steps.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = steps.send(sent)
            except StopIteration as stop:
                return stop.value
