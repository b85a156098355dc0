"""The bounded event history.

A ring buffer of delivery reports (each links the event and what happened to
it): ``deque.append`` with a ``maxlen`` is O(1) and atomic, so recording takes
no lock. Resizing swaps in a new deque under the lock; a publisher that read
the old deque just before the swap notices afterwards that the deque changed
and puts its report into the new one too (unless the resize already copied
it), so a resize never loses a record.

Size 0 is a deque with ``maxlen=0`` (appending to it keeps nothing), not
None, so the append, made on every publish, needs no test for "off".

Observers (:mod:`._waiting`'s waiters and streams, the test capture) are
called with every report as it is recorded, history on or off: recording is
the one point every publish -- on each path, cancelled or handed off --
passes once its receivers are done.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ._checks import check_positive_int
from ._describe import describe
from ._events import Event, EventTypeLike
from ._report import DeliveryReport
from ._types import same_source, type_matcher

__all__ = ["History", "Observer"]

logger = logging.getLogger("blinker_events")

#: Called with each report as its publish ends, in the thread that ended it.
Observer = Callable[[DeliveryReport], object]


class History:
    """Keeps the last ``size`` delivery reports, oldest first. Size 0 keeps none."""

    # Slots: ``record`` reads ``_reports`` twice per publish.
    __slots__ = ("_lock", "_reports", "_size", "observers")

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._reports: deque[DeliveryReport] = deque(maxlen=size)
        #: Replaced whole under the lock, read without it (see observe).
        self.observers: tuple[Observer, ...] = ()

    def locks(self) -> tuple[threading.Lock]:
        """The locks a forked child must re-make."""
        return (self._lock,)

    @property
    def size(self) -> int:
        return self._size

    @property
    def enabled(self) -> bool:
        return self._size > 0

    def record(self, report: DeliveryReport) -> None:
        reports = self._reports
        reports.append(report)  # size 0: maxlen=0 keeps nothing
        if reports is not self._reports:
            self._rescue(report)

    def _notify(self, report: DeliveryReport) -> None:
        # An observer runs inside a publish that already stands: what it
        # raises is logged, never the publisher's (nor another observer's).
        for observer in self.observers:
            try:
                observer(report)
            except Exception:
                logger.exception("observer %s failed on %s", describe(observer), describe(report.event))

    def observe(self, observer: Observer) -> None:
        """Call ``observer(report)`` for every report recorded from now on."""
        with self._lock:
            self.observers = (*self.observers, observer)
            self.__class__ = _Observed

    def unobserve(self, observer: Observer) -> bool:
        """Stop calling ``observer``; False if it was not observing."""
        with self._lock:
            kept = tuple(o for o in self.observers if o is not observer)
            found = len(kept) != len(self.observers)
            self.observers = kept
            if not kept:
                self.__class__ = History
            return found

    def replace(self, reports: list[DeliveryReport]) -> None:
        """Make the history ``reports`` (the newest that fit), as if recorded."""
        with self._lock:
            self._reports = deque(reports, maxlen=self._size)

    def _rescue(self, report: DeliveryReport) -> None:
        with self._lock:
            current = self._reports
            # list() copies in one C call, so other publishers' appends
            # cannot interleave with the scan ("deque mutated during iteration").
            if current.maxlen and not any(r is report for r in reversed(list(current))):
                current.append(report)

    def resize(self, size: int) -> None:
        """Change the bound, keeping the newest reports that still fit.
        ``size`` was checked by the caller; nothing changes if the new deque
        cannot be made."""
        with self._lock:
            old = self._reports
            new: deque[DeliveryReport] = deque(maxlen=size)
            # Swap first, copy after: a publisher appending to ``old`` from
            # here on sees the swap and rescues its report (see record);
            # the copy goes in front of anything already appended to ``new``.
            self._size = size
            self._reports = new
            if size:
                room = size - len(new)
                if room > 0:
                    new.extendleft(reversed(list(old)[-room:]))

    def clear(self) -> None:
        with self._lock:
            self._reports = deque(maxlen=self._size)

    def reports(
        self, event_type: EventTypeLike | None = None, limit: int | None = None, *, source: Any = None
    ) -> list[DeliveryReport]:
        """Matching reports, oldest first; ``limit`` (None, or an integer
        from 0 to ``sys.maxsize``) keeps the newest ones."""
        if limit is not None:
            limit = check_positive_int(limit, "limit", minimum=0)
        matches = type_matcher(event_type)  # checks event_type first
        if limit == 0:
            return []
        with self._lock:
            snapshot = list(self._reports)
        if event_type is not None:
            snapshot = [r for r in snapshot if matches(r.event)]
        if source is not None:
            snapshot = [r for r in snapshot if same_source(r.event.source, source)]
        return snapshot if limit is None else snapshot[-limit:]

    def events(
        self, event_type: EventTypeLike | None = None, limit: int | None = None, *, source: Any = None
    ) -> list[Event]:
        return [r.event for r in self.reports(event_type, limit, source=source)]


class _Observed(History):
    """A history with observers: the class :meth:`History.observe` gives it
    (and ``unobserve`` takes back), so a history nobody observes -- every
    publish's case -- records without even testing for observers."""

    __slots__ = ()

    def record(self, report: DeliveryReport) -> None:
        History.record(self, report)
        self._notify(report)
