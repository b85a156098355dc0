"""What happened: the one recorder of receiver outcomes -- succeeded,
failed, timed out, skipped, cancelled, and dispatch-context failures --
with failure counting and auto-disable, and the cycle guard's rule.
(The argument checks are :mod:`._checks`.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import Iterable
from typing import Any

from ._describe import describe
from ._errors import CircularEventError, DispatchContextError, EventTimeoutError
from ._report import DeliveryReport
from ._settings import LiveSettings
from ._subscription import Subscription
from ._types import event_type_name

__all__ = ["PUBLISH_CANCELLED", "TASK_CANCELLED", "OutcomeRecorder", "check_cycle"]

#: Why a receiver task cancelled without a message of its own was cancelled.
TASK_CANCELLED = "its task was cancelled"
#: Why a receiver that was running when its publisher was cancelled is in ``cancelled``.
PUBLISH_CANCELLED = "its publish was cancelled"

logger = logging.getLogger("blinker_events")


def check_cycle(sub: Subscription, chain: tuple[Subscription, ...], max_depth: int) -> CircularEventError | None:
    """The cycle rule, applied before each delivery.

    ``chain`` lists the subscriptions whose handling led to this publish,
    outermost first. The delivery is stopped when the chain is already
    ``max_depth`` long, or when ``sub`` is on it and was not subscribed with
    ``reentrant=True``. Called only when the chain is non-empty, so a
    top-level publish pays nothing for it.
    """
    if len(chain) >= max_depth:
        return CircularEventError(
            f"{sub.name} not called: event nesting reached max_depth={max_depth} ({' -> '.join(s.name for s in chain)})"
        )
    if sub in chain and not sub.reentrant:
        return CircularEventError(
            f"{sub.name} not called: it would be re-entered by an event its own handling caused "
            f"({' -> '.join(s.name for s in chain)} -> {sub.name})"
        )
    return None


class OutcomeRecorder:
    """The bus's bookkeeping of receiver outcomes: logging, failure counts and
    auto-disable. Every dispatch path records outcomes through here, so a
    failure is counted and reported the same way wherever the receiver ran.

    The consecutive-failure count lives on the subscription (not in a dict
    keyed by ``id()``, which Python reuses), so it spans every event type the
    subscription covers. Counting takes the bus lock -- failures are rare and
    may come from several threads at once; a success writes only when there
    is a count to reset, so the common path takes no lock.
    """

    def __init__(self, lock: threading.RLock, settings: LiveSettings) -> None:
        # ``lock``: the registry's, which also guards enabling a subscription.
        self._lock = lock
        # Read at each use, never copied: a configure() applies at once.
        self._settings = settings

    def succeeded(self, report: DeliveryReport, sub: Subscription, result: Any = None) -> None:
        report.succeeded.append(sub)
        if report.results is not None:
            report.results.append((sub, result))
        if sub.failures:
            self.reset(sub)

    def reset(self, sub: Subscription) -> None:
        """A success ends a run of failures (the sync hot path checks
        ``sub.failures`` itself and calls this only when there is one)."""
        with self._lock:
            sub.failures = 0

    def failed(self, report: DeliveryReport, sub: Subscription, exc: BaseException) -> None:
        report._add_failure(sub, exc)
        if report.results is not None:
            report.results.append((sub, exc))
        if not self._settings.value.propagate_exceptions:
            # Before logging: a log record holds what it is given, and some
            # handlers keep records. Exceptions raised to the caller keep
            # their frames, for debugging.
            _detach_traceback(exc)
        logger.error("receiver %s failed handling %s", sub.name, repr(report.event), exc_info=exc)
        self._count_failure(report, sub, exc)

    def ended(self, report: DeliveryReport, sub: Subscription, error: BaseException | None, result: Any = None) -> None:
        """Record how an async receiver's run ended: returned, raised, or
        was cancelled (by anyone but the bus's timeout, which the caller
        records with :meth:`timed_out`)."""
        if error is None:
            self.succeeded(report, sub, result)
        elif isinstance(error, asyncio.CancelledError):
            self.cancelled(report, sub, _cancel_message(error))
        else:
            self.failed(report, sub, error)

    def cancelled(self, report: DeliveryReport, sub: Subscription, why: str) -> None:
        # Not a failure: the receiver was stopped, it did nothing wrong (a
        # client hanging up must not disable a healthy receiver). Nor a
        # success: a run of failures goes on counting after it.
        report._add_cancelled(sub)
        if report.results is not None:
            report.results.append((sub, asyncio.CancelledError(why)))
        logger.info("receiver %s cancelled handling %s: %s", sub.name, repr(report.event), why)

    def cancelled_unless_done(self, report: DeliveryReport, subs: Iterable[Subscription], why: str) -> None:
        """Record as cancelled each of ``subs`` the report has no outcome for
        yet: their run was cut short before it could record them."""
        for sub in subs:
            if not report._has_outcome(sub):
                self.cancelled(report, sub, why)

    def timed_out(self, report: DeliveryReport, sub: Subscription, timeout: float | None) -> None:
        report._add_timeout(sub)
        error = EventTimeoutError(f"{sub.name} overran its timeout of {timeout}s handling {report.event!r}")
        if report.results is not None:
            report.results.append((sub, error))
        logger.warning("%s", error)
        self._count_failure(report, sub, error)

    def skipped_cycle(self, report: DeliveryReport, sub: Subscription, error: CircularEventError) -> None:
        # Not a failure: the receiver did nothing wrong, so no count.
        report._add_skip(sub, "cycle", error)
        logger.warning("cycle guard: %s", error)

    def context_failed(
        self, report: DeliveryReport, exc: BaseException, when: str, not_run: Iterable[Subscription] = ()
    ) -> None:
        """The dispatch context raised ``when`` (``"entering"`` or
        ``"leaving"``) around a delivery; ``not_run`` are the receivers it
        kept from running. Reported like a receiver's failure, counted
        against no receiver: they did nothing wrong."""
        error = DispatchContextError(f"the dispatch context raised {when} it around {report.event!r}: {describe(exc)}")
        error.__cause__ = exc
        skipped = 0
        for sub in not_run:
            if sub.active and not report._has_outcome(sub):
                report._add_skip(sub, "context")
                skipped += 1
        report._add_context_error(error)
        if not self._settings.value.propagate_exceptions:
            _detach_traceback(error)  # and its cause's, as for a receiver's failure
        logger.error("%s (%d receiver(s) not run)", error, skipped, exc_info=error)

    def _count_failure(self, report: DeliveryReport, sub: Subscription, exc: BaseException) -> None:
        # The description, not the exception: it may hold the event, its
        # source and data (ValueError(event)), which a subscription that
        # stays disabled would keep for good. Made outside the lock: it runs
        # the application's __repr__.
        described = describe(exc)
        with self._lock:
            sub.failures += 1
            sub.last_error = described
            if sub.disabled or sub.failures < self._settings.value.failure_threshold:
                return
            sub.disabled = True
            failures = sub.failures
        report._add_disabled(sub, describe_disable(sub, failures, exc))
        logger.warning(
            "receiver %s disabled after %d consecutive failures (last: %s); call .enable() on its subscription "
            "to re-enable it",
            sub.name,
            failures,
            described,
        )


def _cancel_message(error: asyncio.CancelledError) -> str:
    """The message the canceller gave (``task.cancel(msg)``), if it is text."""
    message = error.args[0] if error.args else None
    return message if isinstance(message, str) and message else TASK_CANCELLED


_NOTE = "Traceback (its frames were released by blinker_events):\n"


def _detach_traceback(exc: BaseException) -> None:
    """Keep the tracebacks as text (a note, shown whenever the exception is
    printed) and drop the frames, of ``exc`` and of every exception it
    carries: its ``__cause__`` and ``__context__`` (even a suppressed one,
    which still holds its frames) and the members of an exception group,
    transitively.

    A traceback's frames keep their locals alive, and every frame keeps its
    caller's frame alive, up through the bus's dispatch (the event, the
    report) and the publisher's own call. Reports live in the history and
    the last error on each subscription, so without this a failure would
    pin all of that, the event's source included, for as long as they do.
    """
    todo = [exc]
    seen: set[int] = set()  # ids, of exceptions held by ``todo`` or the chain: none is freed meanwhile
    while todo:
        current = todo.pop()
        if id(current) in seen:  # chains can loop (an exception re-raised in its own handler)
            continue
        seen.add(id(current))
        _note_traceback(current)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)


def _note_traceback(exc: BaseException) -> None:
    tb = exc.__traceback__
    if tb is None:
        return
    if not any(note.startswith(_NOTE) for note in getattr(exc, "__notes__", ())):
        exc.add_note(_NOTE + "".join(traceback.format_tb(tb)).rstrip())
    exc.__traceback__ = None


def describe_disable(sub: Subscription, failures: int, error: BaseException | None) -> dict[str, Any]:
    """The JSON-safe data of a ``SUBSCRIBER_DISABLED`` event: the count and
    error at the moment of disabling (other threads may count on after it)."""
    return {
        "subscription_id": sub.id,
        "receiver": sub.name,
        "event_type": None if sub.event_type is None else event_type_name(sub.event_type),
        "failures": failures,
        "error": describe(error),
    }
