"""OpenTelemetry tracing and metrics for a bus (the ``otel`` extra:
``pip install "blinker-events[otel]"``; only ``opentelemetry-api`` is
needed at run time -- the application brings the SDK and its exporters).

::

    instrumentation = blinker_events.otel.instrument(bus)   # or the default bus
    ...
    instrumentation.uninstrument()                          # or use it as a context manager

Instrumenting a bus makes a ``send <type>`` span per publish and a
``process <type>`` span per receiver, child of it and current while the
receiver runs (on every path: inline, the pool, the worker, the bus loop,
tasks), so what a receiver publishes is traced under its span; a Redis
bridge of the bus carries the trace context in each stream entry. It also
reports deliveries by outcome, receiver durations, the worker queue and the
bridges' counters as OpenTelemetry metrics. See the observability page of
the documentation (``docs/observability.md``) for the spans, attributes,
metric names and the Prometheus set-up.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from opentelemetry import metrics, trace

from .. import DeliveryReport, Event, EventBus, __version__, default_bus
from ..lowlevel import instrument as install_hooks
from ..lowlevel import instrumentation, observe, unobserve
from ..lowlevel import uninstrument as remove_hooks
from ._metrics import Instruments, instruments_for
from ._spans import Tracing

__all__ = ["Instrumentation", "instrument"]


def instrument(
    bus: EventBus | None = None, *, tracer_provider: Any = None, meter_provider: Any = None
) -> Instrumentation:
    """Trace and measure ``bus`` (None: :data:`blinker_events.default_bus`)
    from now on, with spans from ``tracer_provider`` and instruments from
    ``meter_provider`` (None: OpenTelemetry's global ones, as set when a
    span or measurement is made).

    :returns: the :class:`Instrumentation`, whose ``uninstrument()`` undoes it.
    :raises TypeError: ``bus`` is not an EventBus, or a provider has no
        ``get_tracer`` / ``get_meter``.
    :raises ValueError: ``bus`` is already instrumented (by this or any
        other tracer): two instrumentations would make every span twice.
        Nothing changes.
    """
    if bus is None:
        bus = default_bus
    if not isinstance(bus, EventBus):
        raise TypeError(f"bus must be an EventBus or None, not {type(bus).__name__}")
    if tracer_provider is not None and not callable(getattr(tracer_provider, "get_tracer", None)):
        raise TypeError(f"tracer_provider must be a TracerProvider or None, not {type(tracer_provider).__name__}")
    if meter_provider is not None and not callable(getattr(meter_provider, "get_meter", None)):
        raise TypeError(f"meter_provider must be a MeterProvider or None, not {type(meter_provider).__name__}")
    if instrumentation(bus) is not None:
        raise ValueError(f"bus: {bus!r} is already instrumented")
    if tracer_provider is None:
        tracer = trace.get_tracer("blinker_events", __version__)
    else:
        tracer = tracer_provider.get_tracer("blinker_events", __version__)
    instruments = instruments_for(metrics.get_meter_provider() if meter_provider is None else meter_provider)
    return Instrumentation(bus, tracer, instruments)


class Instrumentation:
    """A bus's tracing and metrics, as :func:`instrument` set them up (made
    by it, not by hand). :meth:`uninstrument` (or leaving a ``with`` block)
    takes them off."""

    # The tracer and instruments are typed loosely here: they are internal,
    # and the reference shows this signature.
    def __init__(self, bus: EventBus, tracer: Any, instruments: Any) -> None:
        self._bus = bus
        self._instruments: Instruments = instruments
        self._hooks = Tracing(tracer, self._timed)
        self._active = True
        # One bound method, kept: unobserve tells observers apart by identity.
        self._observer = self._observed
        install_hooks(bus, self._hooks)  # ValueError if another got there first: nothing else done yet
        observe(bus, self._observer)
        instruments.add(self)

    @property
    def bus(self) -> EventBus:
        """The instrumented bus."""
        return self._bus

    @property
    def active(self) -> bool:
        """False once :meth:`uninstrument` ran."""
        return self._active

    def uninstrument(self) -> None:
        """Stop tracing and measuring the bus; it then costs what it did
        before it was instrumented. Idempotent. Receivers running now still
        end their spans; the instruments of the meter provider stay (an
        OpenTelemetry instrument cannot be removed) and stop reporting this
        bus."""
        if not self._active:
            return
        self._active = False
        remove_hooks(self._bus, self._hooks)
        unobserve(self._bus, self._observer)
        self._instruments.discard(self)

    def _observed(self, report: DeliveryReport) -> None:
        self._instruments.delivered(self._bus, report)

    def _timed(self, event: Event, outcome: str, seconds: float) -> None:
        self._instruments.timed(self._bus, event, outcome, seconds)

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.uninstrument()

    def __repr__(self) -> str:
        state = "active" if self._active else "uninstrumented"
        return f"<Instrumentation of {self._bus!r} {state}>"


Instrumentation.__module__ = __name__
