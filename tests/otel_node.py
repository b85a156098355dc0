"""A receiving node for tests/test_otel_redis.py: a bus instrumented with
the OpenTelemetry SDK (spans kept in memory) behind a Redis bridge, in a
process of its own::

    python -m tests.otel_node --url redis://127.0.0.1:PORT/0 --stream s --mode broadcast --spans out.jsonl

It prints ``READY`` once its bridge started, handles ``order.created``
events (a sync receiver that publishes ``order.audited`` on the local bus,
which an async receiver handles), and once ``--count`` events were fully
handled -- or ``--seconds`` passed -- writes every finished span to
``--spans`` as one JSON line each (name, kind, ids as hex, parent, links,
attributes) and exits. ``--plain`` runs the node without instrumentation.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from blinker_events import Event, EventBus, otel
from blinker_events.redis import RedisBridge


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--mode", choices=("broadcast", "group"), default="broadcast")
    parser.add_argument("--spans", required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--plain", action="store_true")
    args = parser.parse_args()

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bus = EventBus(name="consumer")
    handled = threading.Semaphore(0)
    received: list[dict[str, object]] = []

    def audit(event: Event) -> None:
        received.append(dict(event.data))
        bus.publish_sync(Event("order.audited", {"n": event.data["n"]}))

    async def audited(event: Event) -> None:
        handled.release()

    bus.subscribe("order.created", audit)
    bus.subscribe("order.audited", audited)
    instrumentation = None if args.plain else otel.instrument(bus, tracer_provider=provider)
    group = {"group": "workers"} if args.mode == "group" else {}
    bridge = RedisBridge(
        bus, args.url, stream=args.stream, event_types=["order.created"], direction="in", mode=args.mode, **group
    )
    assert bridge.start()
    print("READY", flush=True)
    deadline = time.monotonic() + args.seconds
    for _ in range(args.count):
        if not handled.acquire(timeout=max(0.0, deadline - time.monotonic())):
            break
    # The spans of the receivers end just after they return.
    while time.monotonic() < deadline and len(exporter.get_finished_spans()) < 5 * args.count and not args.plain:
        time.sleep(0.01)
    bridge.stop()
    if instrumentation is not None:
        instrumentation.uninstrument()
    bus.shutdown(10)
    with open(args.spans, "w", encoding="utf-8") as out:
        for span in exporter.get_finished_spans():
            line = {
                "name": span.name,
                "kind": span.kind.name,
                "trace_id": f"{span.context.trace_id:032x}",
                "span_id": f"{span.context.span_id:016x}",
                "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
                "links": [[f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}"] for link in span.links],
                "attributes": dict(span.attributes or {}),
            }
            out.write(json.dumps(line) + "\n")
    print("RECEIVED", json.dumps(received), flush=True)


if __name__ == "__main__":
    main()
