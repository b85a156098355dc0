"""The cost of :mod:`blinker_events.otel`, side by side (scenario ``OT`` of
``python -m blinker_events bench``): S1 (``publish_sync``, one sync
receiver) and A1 (``await publish``, one async receiver) on three buses,
interleaved as every scenario is:

- ``S1`` / ``A1``: not instrumented;
- ``... otel no-op``: instrumented with OpenTelemetry's no-op providers --
  what a library using the bus pays when the application set up no SDK;
- ``... otel sdk``: instrumented with the SDK recording every span (to an
  exporter that drops them: exporting is the exporter's cost, not ours) and
  every measurement (an in-memory reader).

The ratios are in the result's notes (``<case> / plain``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from blinker_events import Event, EventBus, otel

__all__ = ["otel_scenario"]

#: The async receivers' event type (the sync ones get ``Bench.EVENT``).
ASYNC = "bench.async"


def _providers(kind: str) -> tuple[Any, Any]:
    if kind == "noop":
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.trace import NoOpTracerProvider

        return NoOpTracerProvider(), NoOpMeterProvider()
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(Drop()))
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


def otel_scenario(n: int, repeats: int) -> Any:
    from benchmarks.bench import DATA, SOURCE, Bench, Counter, Result, _async_runner, _calls_made, _interleave

    counter = Counter()
    loop = asyncio.new_event_loop()
    buses: dict[str, EventBus] = {}
    instrumentations = []
    for kind in ("plain", "noop", "sdk"):
        bus = buses[kind] = EventBus(timeout=5.0, history_size=1000)
        bus.subscribe(Bench.EVENT, counter.sync(f"S1 {kind}"))
        bus.subscribe(ASYNC, counter.async_(f"A1 {kind}"))
        if kind != "plain":
            tracer_provider, meter_provider = _providers(kind)
            instrumentations.append(
                otel.instrument(bus, tracer_provider=tracer_provider, meter_provider=meter_provider)
            )

    def sync_case(bus: EventBus) -> Any:
        def run(n: int) -> None:
            publish = bus.publish_sync
            for _ in range(n):
                publish(Event(Bench.EVENT, DATA, SOURCE))

        return run

    def async_case(bus: EventBus) -> Any:
        async def run(n: int) -> None:
            publish = bus.publish
            for _ in range(n):
                await publish(Event(ASYNC, DATA, SOURCE))

        return _async_runner(loop, run)

    cases = {}
    for kind, bus in buses.items():
        cases[f"S1 {kind}"] = sync_case(bus)
    for kind, bus in buses.items():
        cases[f"A1 {kind}"] = async_case(bus)
    ns = _interleave(cases, n, repeats)
    for name in cases:
        counter.expect(name, _calls_made(n, repeats))
    for instrumentation in instrumentations:
        instrumentation.uninstrument()
    for bus in buses.values():
        bus.shutdown()
    loop.close()
    notes = {
        f"{case} {kind} / plain": ns[f"{case} {kind}"] / ns[f"{case} plain"]
        for case in ("S1", "A1")
        for kind in ("noop", "sdk")
    }
    return Result("OT", "S1 and A1 uninstrumented, with otel's no-op providers, with the SDK recording", ns, notes)
