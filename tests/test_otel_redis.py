"""The trace context across the Redis bridge: this process publishes,
instrumented; a second process (tests/otel_node.py) receives over a real
redis-server and sends back the spans it made."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from blinker_events import Event, otel
from blinker_events.redis import RedisBridge
from blinker_events.redis._wire import TRACE, carrier
from tests.conftest import BusFactory

ROOT = Path(__file__).resolve().parents[1]
WAIT = 60.0


class Consumer:
    """A ``tests.otel_node`` process."""

    def __init__(self, directory: Path, url: str, stream: str, mode: str, *options: str) -> None:
        self.spans_path = directory / "spans.jsonl"
        self.stdout_path = directory / "node.stdout"
        self.stderr_path = directory / "node.stderr"
        argv = [sys.executable, "-m", "tests.otel_node", "--url", url, "--stream", stream, "--mode", mode]
        argv += ["--spans", str(self.spans_path), *options]
        with self.stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(argv, cwd=ROOT, stdout=stdout, stderr=stderr)

    def output(self) -> str:
        return f"stdout:\n{self.stdout_path.read_text()}\nstderr:\n{self.stderr_path.read_text()[-4000:]}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WAIT
        while "READY" not in self.stdout_path.read_text():
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.02)

    def spans(self) -> list[dict[str, Any]]:
        assert self.process.wait(WAIT) == 0, self.output()
        return [json.loads(line) for line in self.spans_path.read_text().splitlines()]

    def received(self) -> list[dict[str, Any]]:
        [line] = [line for line in self.stdout_path.read_text().splitlines() if line.startswith("RECEIVED ")]
        return list(json.loads(line.split(" ", 1)[1]))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def consumers() -> Any:
    made: list[Consumer] = []
    yield made
    for consumer in made:
        consumer.kill()


def one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [span for span in spans if span["name"] == name]
    assert len(found) == 1, [span["name"] for span in spans]
    return found[0]


def produce(buses: BusFactory, url: str, mode: str, *, instrumented: bool = True) -> tuple[Any, Any]:
    """Publish one ``order.created`` from this process inside a span of the
    application's own; returns (the application span, the send span), or
    (None, None) uninstrumented."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bus = buses(name="producer")
    group = {"group": "workers"} if mode == "group" else {}
    bridge = RedisBridge(bus, url, stream="orders", event_types=["order.created"], direction="out", mode=mode, **group)
    assert bridge.start()
    instrumentation = otel.instrument(bus, tracer_provider=provider) if instrumented else None
    try:
        with provider.get_tracer("app").start_as_current_span("POST /orders"):
            report = bus.publish_sync(Event("order.created", {"n": 1}))
        assert report.handed_off is (mode == "group")
    finally:
        if instrumentation is not None:
            instrumentation.uninstrument()
        bridge.stop()
    if not instrumented:
        return None, None
    spans = {span.name: span for span in exporter.get_finished_spans()}
    return spans["POST /orders"], spans["send order.created"]


def test_in_broadcast_mode_the_receiving_node_continues_the_producers_trace(
    buses: BusFactory, redis_server, tmp_path, consumers
) -> None:
    consumer = Consumer(tmp_path, redis_server.url, "orders", "broadcast")
    consumers.append(consumer)
    consumer.wait_ready()
    _, send = produce(buses, redis_server.url, "broadcast")
    spans = consumer.spans()
    trace_id = f"{send.context.trace_id:032x}"
    receive = one(spans, "receive order.created")
    assert receive["kind"] == "CONSUMER"
    assert receive["trace_id"] == trace_id
    assert receive["parent_id"] == f"{send.context.span_id:016x}"
    assert receive["links"] == []
    assert receive["attributes"]["messaging.operation.type"] == "receive"
    assert receive["attributes"]["blinker_events.redis.stream"] == "orders"
    local_send = one(spans, "send order.created")
    assert local_send["parent_id"] == receive["span_id"]
    process = one(spans, "process order.created")
    assert process["parent_id"] == local_send["span_id"]
    nested = one(spans, "send order.audited")
    assert nested["parent_id"] == process["span_id"]
    assert one(spans, "process order.audited")["parent_id"] == nested["span_id"]
    assert {span["trace_id"] for span in spans} == {trace_id}


def test_in_group_mode_the_receiving_node_starts_a_trace_linked_to_the_producers(
    buses: BusFactory, redis_server, tmp_path, consumers
) -> None:
    consumer = Consumer(tmp_path, redis_server.url, "orders", "group")
    consumers.append(consumer)
    consumer.wait_ready()
    _, send = produce(buses, redis_server.url, "group")
    spans = consumer.spans()
    receive = one(spans, "receive order.created")
    assert receive["parent_id"] is None
    assert receive["trace_id"] != f"{send.context.trace_id:032x}"
    assert receive["links"] == [[f"{send.context.trace_id:032x}", f"{send.context.span_id:016x}"]]
    assert {span["trace_id"] for span in spans} == {receive["trace_id"]}
    assert one(spans, "send order.created")["parent_id"] == receive["span_id"]


def test_an_entry_from_an_uninstrumented_producer_starts_a_fresh_trace_there(
    buses: BusFactory, redis_server, tmp_path, consumers
) -> None:
    consumer = Consumer(tmp_path, redis_server.url, "orders", "broadcast")
    consumers.append(consumer)
    consumer.wait_ready()
    produce(buses, redis_server.url, "broadcast", instrumented=False)
    spans = consumer.spans()
    receive = one(spans, "receive order.created")
    assert receive["parent_id"] is None
    assert receive["links"] == []
    assert one(spans, "process order.created")["trace_id"] == receive["trace_id"]


def test_an_uninstrumented_node_reads_entries_that_carry_a_trace(
    buses: BusFactory, redis_server, tmp_path, consumers
) -> None:
    consumer = Consumer(tmp_path, redis_server.url, "orders", "broadcast", "--plain")
    consumers.append(consumer)
    consumer.wait_ready()
    produce(buses, redis_server.url, "broadcast")
    assert consumer.spans() == []
    assert consumer.received() == [{"n": 1}]


def test_only_an_instrumented_bus_writes_the_trace_field(buses: BusFactory, redis_server) -> None:
    import redis

    bus = buses(name="plain")
    bridge = RedisBridge(bus, redis_server.url, stream="fields", event_types=["x"], direction="out")
    assert bridge.start()
    bus.publish_sync(Event("x", {"n": 1}))
    provider = TracerProvider()
    with otel.instrument(bus, tracer_provider=provider):
        bus.publish_sync(Event("x", {"n": 2}))
    bridge.stop()
    client = redis.Redis.from_url(redis_server.url)
    try:
        entries = [fields for _, fields in client.xrange("fields")]
    finally:
        client.close()
    assert len(entries) == 2
    assert TRACE not in entries[0]
    headers = carrier(entries[1])
    assert sorted(headers) == ["traceparent"]
    assert headers["traceparent"].startswith("00-")


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1, 2]", b'{"traceparent": 3}', b"{" * 100_000, b'{"a": "' + b"x" * 5000 + b'"}'],
)
def test_a_malformed_trace_field_is_read_as_none(raw: bytes) -> None:
    assert carrier({TRACE: raw}) == {}


def test_an_instrumented_node_delivers_an_entry_with_a_garbage_trace_field(buses: BusFactory, redis_server) -> None:
    import redis

    bus = buses(name="reader")
    got = threading.Event()
    bus.subscribe("x", lambda e: got.set())
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bridge = RedisBridge(bus, redis_server.url, stream="garbage", event_types=["x"], direction="in")
    with otel.instrument(bus, tracer_provider=provider):
        assert bridge.start()
        client = redis.Redis.from_url(redis_server.url)
        try:
            event = json.dumps(Event("x", {"n": 1}).to_dict()).encode()
            client.xadd(
                "garbage",
                {
                    b"v": b"1",
                    b"origin": b"elsewhere",
                    b"type": b"x",
                    b"event": event,
                    TRACE: b'{"traceparent": "00-zz"}',
                },
            )
        finally:
            client.close()
        assert got.wait(30)
        bridge.stop()
    receive = [span for span in exporter.get_finished_spans() if span.name == "receive x"]
    assert len(receive) == 1
    assert receive[0].parent is None
