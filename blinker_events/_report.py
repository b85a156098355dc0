"""What happened to one published event: the delivery report.

Every publish returns (or resolves to) a :class:`DeliveryReport`; the history
keeps them too, so the outcome of a past event stays inspectable. Lists other
than ``succeeded`` start out as a shared empty tuple and become lists on the
first entry: most publishes have nothing to put there, and a publish is on the
hot path.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._errors import CircularEventError, DispatchContextError, EventTimeoutError

if TYPE_CHECKING:
    from ._events import Event
    from ._subscription import Subscription

__all__ = ["DeliveryReport"]

_NONE: tuple[()] = ()


class DeliveryReport:
    """The outcome of one publish of one event.

    - ``succeeded``: subscriptions whose receiver returned normally.
    - ``failed``: ``(subscription, exception)`` for each receiver that raised.
    - ``timed_out``: subscriptions that overran their timeout (async ones were
      cancelled; sync ones could not be, see :doc:`/timeouts`).
    - ``cancelled``: async receivers whose run was cancelled by someone other
      than the bus's timeout -- the publisher's own cancellation (which the
      publish passes on to the receivers it runs), a loop ending under
      receivers ``publish_sync`` scheduled, the bus loop stopping, or the
      receiver's task cancelled from outside. Not a failure: it is not
      counted toward auto-disable, not in :meth:`errors` and not raised.
    - ``skipped``: ``(subscription, reason, error)`` with reason
      ``"disabled"`` (auto-disabled, error None), ``"cycle"`` (the cycle
      guard, error a :class:`CircularEventError`), ``"abandoned"`` (left
      unrun behind a hung receiver on a thread that could not be replaced)
      or ``"context"`` (the dispatch context could not be entered; error
      None, the error is in ``context_errors``).
    - ``context_errors``: a :class:`DispatchContextError` for each time the
      bus's dispatch context raised when made, entered or left around this
      delivery (its ``__cause__`` is what it raised).
    - ``scheduled``: async receivers that ``publish_sync`` started as tasks on
      the caller's running loop; each moves to one of the lists above when
      its task ends, so ``finished`` turns True then.
    - ``disabled``: subscriptions this publish auto-disabled, and
      ``announcements`` the data of the ``SUBSCRIBER_DISABLED`` event
      announcing each, in the same order.
    - ``results``: ``(subscription, return value or exception)`` for each
      receiver that ran, when the publish collects them (a query class,
      ``TypedEvent`` with ``collect=True``, or the drop-in ``Signal``'s
      ``send``); None otherwise.
    - ``slow``: receivers still running ``slow_after`` seconds after they
      started (the bus setting; see :doc:`/timeouts`), whatever their outcome
      -- each is in one of the lists above too. The watchdog adds them as it
      notices, so one noticed as the receiver returned may be added just
      after the publish ended.
    - ``duration``: seconds from the start of the publish until the last
      receiver it waited for finished.
    - ``handed_off``: True when an outlet (a Redis bridge in group mode) took
      the event to be delivered by whichever process its group picks, so no
      receiver ran here at publish.
    """

    # No ``__slots__``: the fields most publishes leave empty are class
    # attributes (the shared empty tuple), so making a report sets two
    # attributes (four on 3.11, below), not thirteen, and the ``_add_*``
    # methods shadow them per instance on the first entry. A report is made
    # per publish.
    failed: Sequence[tuple[Subscription, BaseException]] = _NONE
    timed_out: Sequence[Subscription] = _NONE
    cancelled: Sequence[Subscription] = _NONE
    context_errors: Sequence[DispatchContextError] = _NONE
    skipped: Sequence[tuple[Subscription, str, CircularEventError | None]] = _NONE
    scheduled: Sequence[Subscription] = _NONE
    disabled: Sequence[Subscription] = _NONE
    slow: Sequence[Subscription] = _NONE
    announcements: Sequence[dict[str, Any]] = _NONE
    #: ``(subscription, return value or exception)`` per receiver that
    #: ran, in the order they ended, for the events of a typed event class
    #: declared ``collect=True`` (a query) and for signals whose ``send``
    #: returns them (the drop-in :class:`blinker_events.Signal`); None when
    #: nobody asked.
    results: list[tuple[Subscription, Any]] | None = None
    duration: float = 0.0
    handed_off: bool = False

    if sys.version_info >= (3, 12):

        def __init__(self, event: Event) -> None:
            self.event = event
            self.succeeded: list[Subscription] = []

    else:

        def __init__(self, event: Event) -> None:
            self.event = event
            self.succeeded: list[Subscription] = []
            # Every publish reads these two (the receivers' loop, and its
            # end), and 3.11 does not specialise reading a class attribute
            # through an instance: set here, they are read at instance
            # speed (S1 -240 instructions, A1 -615). 3.12 and 3.13 do
            # specialise that read, and there the two stores cost more than
            # they save (+860 to +1,900).
            self.results = None
            self.disabled = _NONE

    # -- recording: the dispatch paths' (through the outcome recorder), not public API --

    def _add_failure(self, sub: Subscription, exc: BaseException) -> None:
        if self.failed is _NONE:
            self.failed = []
        self.failed.append((sub, exc))  # type: ignore[attr-defined]

    def _add_timeout(self, sub: Subscription) -> None:
        if self.timed_out is _NONE:
            self.timed_out = []
        self.timed_out.append(sub)  # type: ignore[attr-defined]

    def _add_cancelled(self, sub: Subscription) -> None:
        if self.cancelled is _NONE:
            self.cancelled = []
        self.cancelled.append(sub)  # type: ignore[attr-defined]

    def _add_context_error(self, error: DispatchContextError) -> None:
        if self.context_errors is _NONE:
            self.context_errors = []
        self.context_errors.append(error)  # type: ignore[attr-defined]

    def _add_skip(self, sub: Subscription, reason: str, error: CircularEventError | None = None) -> None:
        if self.skipped is _NONE:
            self.skipped = []
        self.skipped.append((sub, reason, error))  # type: ignore[attr-defined]

    def _add_scheduled(self, sub: Subscription) -> None:
        if self.scheduled is _NONE:
            self.scheduled = []
        self.scheduled.append(sub)  # type: ignore[attr-defined]

    def _add_slow(self, sub: Subscription) -> None:
        # The watchdog adds these (and _merge, of a report the watchdog
        # is done with): no two appends race.
        if self.slow is _NONE:
            self.slow = []
        self.slow.append(sub)  # type: ignore[attr-defined]

    def _add_disabled(self, sub: Subscription, announcement: dict[str, Any]) -> None:
        """Record that this publish disabled ``sub``; ``announcement`` is the
        data of its SUBSCRIBER_DISABLED event, taken at that moment."""
        if self.disabled is _NONE:
            self.disabled = []
            self.announcements = []
        self.disabled.append(sub)  # type: ignore[attr-defined]
        self.announcements.append(announcement)  # type: ignore[attr-defined]

    def _merge(self, other: DeliveryReport | None) -> None:
        """Add the outcomes ``other`` recorded (for the same event)."""
        if other is None:
            return
        self.succeeded.extend(other.succeeded)
        for sub, exc in other.failed:
            self._add_failure(sub, exc)
        for sub in other.timed_out:
            self._add_timeout(sub)
        for sub in other.cancelled:
            self._add_cancelled(sub)
        for sub, reason, error in other.skipped:
            self._add_skip(sub, reason, error)
        for context_error in other.context_errors:
            self._add_context_error(context_error)
        for sub in other.slow:
            self._add_slow(sub)
        for sub, announcement in zip(other.disabled, other.announcements, strict=True):
            self._add_disabled(sub, announcement)
        if self.results is not None and other.results is not None:
            self.results.extend(other.results)
            self._sort_results()

    def _sort_results(self, start: int = 0) -> None:
        """Put ``results[start:]`` back in subscription order (results are
        recorded as outcomes come, which on some paths is not that order)."""
        results = self.results
        if results is not None:
            results[start:] = sorted(results[start:], key=lambda pair: pair[0].seq)

    # -- reading -------------------------------------------------------------

    def _has_outcome(self, sub: Subscription) -> bool:
        """Whether this report already says what happened to ``sub``."""
        return (
            any(s is sub for s in self.succeeded)
            or any(s is sub for s, _ in self.failed)
            or any(s is sub for s in self.timed_out)
            or any(s is sub for s in self.cancelled)
            or any(s is sub for s, _, _ in self.skipped)
        )

    @property
    def finished(self) -> bool:
        """False while receivers scheduled on a running loop are still running."""
        return not self.scheduled

    @property
    def ok(self) -> bool:
        """True when no receiver failed, timed out, was cancelled or was
        stopped by the cycle guard (a cancellation is not an error, but the
        receiver did not finish either)."""
        return not self.cancelled and not self.errors()

    def errors(self) -> list[BaseException]:
        """The errors a propagating bus raises for this publish, in order:
        receiver exceptions, then timeouts, then cycle-guard skips, then
        failures of the dispatch context."""
        errors: list[BaseException] = [exc for _, exc in self.failed]
        errors.extend(EventTimeoutError(f"{sub.name} timed out handling {self.event!r}") for sub in self.timed_out)
        errors.extend(error for _, _, error in self.skipped if error is not None)
        errors.extend(self.context_errors)
        return errors

    def raise_errors(self) -> None:
        """Raise what :meth:`errors` lists: the exception itself when there
        is one, an ``ExceptionGroup`` when there are several.

        :raises BaseException: the one error, or a ``BaseExceptionGroup`` of them; nothing when there are none.
        """
        errors = self.errors()
        if len(errors) == 1:
            raise errors[0]
        if errors:
            # BaseExceptionGroup gives an ExceptionGroup when all are Exceptions.
            raise BaseExceptionGroup(f"{len(errors)} receivers failed handling {self.event!r}", errors)

    def _context_note(self) -> str:
        return f", {len(self.context_errors)} dispatch context error(s)" if self.context_errors else ""

    def __repr__(self) -> str:
        return (
            f"<DeliveryReport {self.event!r}: {len(self.succeeded)} ok, {len(self.failed)} failed, "
            f"{len(self.timed_out)} timed out, {len(self.cancelled)} cancelled, {len(self.skipped)} skipped, "
            f"{len(self.scheduled)} scheduled{self._context_note()}>"
        )
