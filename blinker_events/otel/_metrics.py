"""The metrics: instruments made once per meter provider, fed by every
bus instrumented with that provider.

Counted here: deliveries by outcome (from each publish's report, through
``lowlevel.observe``, so they agree with the reports and the history) and
receiver durations (measured around each receiver by the spans' wrapper).
Everything the bus and its bridges already count -- the worker queue, its
dropped and rejected events, stuck threads, disabled subscriptions, the
bridges' entries -- is read at collection time by observable instruments
from ``bus.stats()`` and each bridge's ``stats()``, never counted twice.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from .. import DeliveryReport, Event, EventBus, __version__
from ..lowlevel import outlets
from ._spans import destination

__all__ = ["BRIDGE_COUNTERS", "DURATION_BUCKETS", "Instruments", "instruments_for"]

# Counts have no unit: an annotation ("{event}") would be the natural one,
# but older versions of OpenTelemetry's Prometheus exporter (0.41b0, say)
# put it into the metric's name, which prometheus_client then refuses: the
# whole scrape fails.

#: The bridge counters exposed, as ``outcome`` of ``blinker_events.bridge.entries``.
BRIDGE_COUNTERS = (
    "published",
    "delivered",
    "failed",
    "dropped",
    "duplicates",
    "malformed",
    "dead_lettered",
    "lost_to_trim",
)

#: The receiver duration histogram's bucket bounds, in seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

_OUTCOMES = (("succeeded", "succeeded"), ("failed", "failed"), ("timed_out", "timed_out"), ("cancelled", "cancelled"))


class Source(Protocol):
    """What the instruments read: an instrumented bus."""

    @property
    def bus(self) -> EventBus: ...


class Instruments:
    """The instruments of one meter provider, and the buses they observe."""

    def __init__(self, meter: metrics.Meter) -> None:
        self._lock = threading.Lock()
        self._sources: weakref.WeakSet[Any] = weakref.WeakSet()
        self.deliveries = meter.create_counter(
            "blinker_events.deliveries", description="Receiver deliveries, by outcome"
        )
        try:  # the buckets OpenTelemetry's messaging conventions advise, in seconds
            self.duration = meter.create_histogram(
                "blinker_events.receiver.duration",
                unit="s",
                description="How long receivers ran",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
        except TypeError:  # opentelemetry-api before 1.30 has no advice: the SDK's default buckets
            self.duration = meter.create_histogram(
                "blinker_events.receiver.duration", unit="s", description="How long receivers ran"
            )
        observed: list[tuple[str, str, str, Callable[[EventBus], Iterable[tuple[int, dict[str, str]]]], bool]] = [
            ("blinker_events.queue.depth", "", "Events waiting in the worker queue", _stat("queued"), False),
            ("blinker_events.queue.dropped", "", "Events the worker queue dropped", _stat("dropped"), True),
            (
                "blinker_events.queue.rejected",
                "",
                "Publishes the full worker queue refused",
                _stat("rejected"),
                True,
            ),
            (
                "blinker_events.threads.stuck",
                "",
                "Pool threads stuck in a receiver past its timeout",
                _stat("stuck_threads"),
                False,
            ),
            (
                "blinker_events.subscriptions.disabled",
                "",
                "Auto-disabled subscriptions",
                _stat("disabled"),
                False,
            ),
            ("blinker_events.bridge.entries", "", "Bridge stream entries, by outcome", _bridge_entries, True),
        ]
        for name, unit, description, read, monotonic in observed:
            callback = self._callback(read)
            if monotonic:
                meter.create_observable_counter(name, callbacks=[callback], unit=unit, description=description)
            else:
                meter.create_observable_gauge(name, callbacks=[callback], unit=unit, description=description)

    def add(self, source: Source) -> None:
        with self._lock:
            self._sources.add(source)

    def discard(self, source: Source) -> None:
        with self._lock:
            self._sources.discard(source)

    def _callback(
        self, read: Callable[[EventBus], Iterable[tuple[int, dict[str, str]]]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                sources = list(self._sources)
            observations = []
            for source in sources:
                bus = source.bus
                for value, attributes in read(bus):
                    observations.append(Observation(value, {"bus": bus.name[:100], **attributes}))
            return observations

        return observe

    def delivered(self, bus: EventBus, report: DeliveryReport) -> None:
        """Count the outcomes in ``report`` (an observer of ``bus``)."""
        base = {"bus": bus.name[:100], "event_type": destination(report.event)}
        add = self.deliveries.add
        for field, outcome in _OUTCOMES:
            count = len(getattr(report, field))
            if count:
                add(count, {**base, "outcome": outcome})
        for _, reason, _ in report.skipped:
            add(1, {**base, "outcome": "skipped", "reason": reason})

    def timed(self, bus: EventBus, event: Event, outcome: str, seconds: float) -> None:
        self.duration.record(seconds, {"bus": bus.name[:100], "event_type": destination(event), "outcome": outcome})


def _stat(key: str) -> Callable[[EventBus], Iterable[tuple[int, dict[str, str]]]]:
    def read(bus: EventBus) -> Iterable[tuple[int, dict[str, str]]]:
        return [(int(bus.stats()[key]), {})]

    return read


def _bridge_entries(bus: EventBus) -> Iterable[tuple[int, dict[str, str]]]:
    """Each bridge outlet's counters (an outlet with ``stats()`` and a
    ``stream``: the Redis bridge; others are passed by)."""
    found = []
    for outlet in outlets(bus):
        stats = getattr(outlet, "stats", None)
        stream = getattr(outlet, "stream", None)
        if not callable(stats) or not isinstance(stream, str):
            continue
        counters = stats()
        for key in BRIDGE_COUNTERS:
            if isinstance(counters.get(key), int):
                found.append((counters[key], {"stream": stream[:100], "outcome": key}))
    return found


_BY_PROVIDER: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()
_STRONG: dict[int, tuple[Any, Instruments]] = {}  # providers that take no weak reference
_REGISTRY_LOCK = threading.Lock()


def instruments_for(provider: metrics.MeterProvider) -> Instruments:
    """The instruments of ``provider``, made on first use: an instrument
    made twice on one meter would be refused, and its callbacks lost."""
    with _REGISTRY_LOCK:
        try:
            found = _BY_PROVIDER.get(provider)
        except TypeError:
            held = _STRONG.get(id(provider))
            found = held[1] if held is not None else None
        if found is None:
            found = Instruments(provider.get_meter("blinker_events", __version__))
            try:
                _BY_PROVIDER[provider] = found
            except TypeError:
                _STRONG[id(provider)] = (provider, found)
        return found
