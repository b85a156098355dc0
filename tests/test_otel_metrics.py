"""blinker_events.otel's metrics, read with the SDK's InMemoryMetricReader,
and their exposure to Prometheus: a real /metrics endpoint scraped over HTTP."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from blinker_events import Event, otel
from tests.conftest import BusFactory, free_port, hold_the_worker, wait_until


class Metered:
    """A meter provider of the test's own, read in memory."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """``(attributes, value)`` of each data point of metric ``name`` now
        (a histogram's value: ``(count, sum)``)."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        value = (point.count, point.sum) if hasattr(point, "count") else point.value
                        found.append((dict(point.attributes or {}), value))
        return sorted(found, key=lambda item: sorted(item[0].items()))

    def value(self, name: str, **attributes: str) -> Any:
        matching = [value for attrs, value in self.points(name) if attrs == attributes]
        assert len(matching) == 1, (name, attributes, self.points(name))
        return matching[0]


@pytest.fixture
def metered() -> Iterator[Metered]:
    made = Metered()
    yield made
    made.provider.shutdown()


def test_deliveries_are_counted_by_event_type_and_outcome(new_bus: BusFactory, metered) -> None:
    bus = new_bus(name="shop", failure_threshold=2)

    def broken(e: Event) -> None:
        raise ValueError("no")

    bus.subscribe("paid", lambda e: None)
    bus.subscribe("paid", broken)
    bus.subscribe("slow", lambda e: time.sleep(0.15), timeout=0.05)
    with otel.instrument(bus, meter_provider=metered.provider):
        for _ in range(3):
            bus.publish_sync(Event("paid"))
        bus.publish_sync(Event("slow"))
        assert metered.points("blinker_events.deliveries") == [
            ({"bus": "shop", "event_type": "paid", "outcome": "failed"}, 2),
            ({"bus": "shop", "event_type": "paid", "outcome": "skipped", "reason": "disabled"}, 1),
            ({"bus": "shop", "event_type": "paid", "outcome": "succeeded"}, 3),
            ({"bus": "shop", "event_type": "slow", "outcome": "timed_out"}, 1),
        ]


def test_each_instrument_has_the_unit_the_docs_give(new_bus: BusFactory, metered) -> None:
    """observability.md's table: seconds for durations, no unit for counts."""
    bus = new_bus(name="units")
    bus.subscribe("x", lambda e: None)
    with otel.instrument(bus, meter_provider=metered.provider):
        bus.publish_sync(Event("x"))
        data = metered.reader.get_metrics_data()
    units = {
        metric.name: metric.unit
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert units == {
        "blinker_events.deliveries": "",
        "blinker_events.receiver.duration": "s",
        "blinker_events.queue.depth": "",
        "blinker_events.queue.dropped": "",
        "blinker_events.queue.rejected": "",
        "blinker_events.threads.stuck": "",
        "blinker_events.subscriptions.disabled": "",
    }


def test_receiver_durations_go_to_a_histogram_in_seconds(new_bus: BusFactory, metered) -> None:
    bus = new_bus(name="timed")
    bus.subscribe("x", lambda e: time.sleep(0.05))
    with otel.instrument(bus, meter_provider=metered.provider):
        bus.publish_sync(Event("x"))
        bus.publish_sync(Event("x"))
        count, total = metered.value(
            "blinker_events.receiver.duration", bus="timed", event_type="x", outcome="succeeded"
        )
    assert count == 2
    assert 0.1 <= total < 5


def test_the_worker_queue_depth_dropped_and_rejected_events_are_observed(new_bus: BusFactory, metered, gate) -> None:
    bus = new_bus(name="q", queue_size=2, overflow="drop_oldest")
    with otel.instrument(bus, meter_provider=metered.provider):
        _, first = hold_the_worker(bus, gate, first=0)
        for n in range(1, 5):  # two fit; two of them are dropped
            bus.publish_nowait(Event("demo.ping", {"n": n}))
        assert metered.value("blinker_events.queue.depth", bus="q") == 2
        assert metered.value("blinker_events.queue.dropped", bus="q") == 2
        bus.configure(overflow="raise")
        with pytest.raises(Exception, match="worker queue is full"):
            bus.publish_nowait(Event("demo.ping", {"n": 9}))
        assert metered.value("blinker_events.queue.rejected", bus="q") == 1
        gate.set()
        first.result(10)
        assert wait_until(lambda: bus.stats()["queued"] == 0, 10)
        assert metered.value("blinker_events.queue.depth", bus="q") == 0


def test_stuck_threads_and_disabled_subscriptions_are_observed(new_bus: BusFactory, metered, release) -> None:
    bus = new_bus(name="s", failure_threshold=1)

    def hung(e: Event) -> None:
        release.wait(30)

    def broken(e: Event) -> None:
        raise ValueError("no")

    bus.subscribe("hang", hung, timeout=0.1)
    bus.subscribe("fail", broken)
    with otel.instrument(bus, meter_provider=metered.provider):
        bus.publish_sync(Event("fail"))
        future = bus.publish_nowait(Event("hang"))
        assert len(future.result(10).timed_out) == 1
        assert metered.value("blinker_events.threads.stuck", bus="s") == 1
        # Both: the failure, and the timeout (a failure too, at threshold 1).
        assert metered.value("blinker_events.subscriptions.disabled", bus="s") == 2
        release.set()
        assert wait_until(lambda: bus.stats()["stuck_threads"] == 0, 10)
        assert metered.value("blinker_events.threads.stuck", bus="s") == 0


def test_two_buses_on_one_meter_provider_are_both_reported_until_uninstrumented(new_bus: BusFactory, metered) -> None:
    first, second = new_bus(name="one"), new_bus(name="two")
    for bus in (first, second):
        bus.subscribe("x", lambda e: None)
    one = otel.instrument(first, meter_provider=metered.provider)
    two = otel.instrument(second, meter_provider=metered.provider)
    first.publish_sync(Event("x"))
    second.publish_sync(Event("x"))
    assert metered.value("blinker_events.deliveries", bus="one", event_type="x", outcome="succeeded") == 1
    assert metered.value("blinker_events.deliveries", bus="two", event_type="x", outcome="succeeded") == 1
    assert [attrs for attrs, _ in metered.points("blinker_events.queue.depth")] == [{"bus": "one"}, {"bus": "two"}]
    one.uninstrument()
    first.publish_sync(Event("x"))
    assert [attrs for attrs, _ in metered.points("blinker_events.queue.depth")] == [{"bus": "two"}]
    two.uninstrument()


def test_a_redis_bridges_counters_are_observed(buses: BusFactory, metered, redis_server) -> None:
    from blinker_events.redis import RedisBridge

    sender, receiver = buses(name="sender"), buses(name="receiver")
    got = threading.Event()
    receiver.subscribe("order.created", lambda e: got.set())
    inbound = RedisBridge(receiver, redis_server.url, stream="orders", event_types=["order.created"], direction="in")
    outbound = RedisBridge(sender, redis_server.url, stream="orders", event_types=["order.created"], direction="out")
    with (
        otel.instrument(sender, meter_provider=metered.provider),
        otel.instrument(receiver, meter_provider=metered.provider),
    ):
        assert inbound.start()
        assert outbound.start()
        sender.publish_sync(Event("order.created", {"n": 1}))
        assert got.wait(30)
        assert wait_until(lambda: outbound.stats()["published"] == 1, 30)
        assert metered.value("blinker_events.bridge.entries", bus="sender", stream="orders", outcome="published") == 1
        assert wait_until(lambda: inbound.stats()["delivered"] == 1, 30)
        assert metered.value("blinker_events.bridge.entries", bus="receiver", stream="orders", outcome="delivered") == 1
        assert metered.value("blinker_events.bridge.entries", bus="receiver", stream="orders", outcome="failed") == 0
    outbound.stop()
    inbound.stop()


# -- Prometheus ---------------------------------------------------------------


def test_the_metrics_are_scraped_from_a_prometheus_endpoint(new_bus: BusFactory) -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    # As the docs page sets it up: the reader registers with prometheus_client's
    # default registry (and leaves it when the provider shuts down), which the
    # HTTP server serves.
    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    bus = new_bus(name="web")

    def broken(e: Event) -> None:
        raise ValueError("no")

    bus.subscribe("order.created", lambda e: None)
    bus.subscribe("order.created", broken)
    try:
        with otel.instrument(bus, meter_provider=provider):
            bus.publish_sync(Event("order.created"))
            bus.publish_sync(Event("order.created"))
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                assert response.status == 200
                text = response.read().decode()
    finally:
        server.shutdown()
        thread.join(10)
        provider.shutdown()
    samples = scraped(text)
    web = {"bus": "web", "event_type": "order.created"}
    assert samples["blinker_events_deliveries_total", frozenset({**web, "outcome": "succeeded"}.items())] == 2.0
    assert samples["blinker_events_deliveries_total", frozenset({**web, "outcome": "failed"}.items())] == 2.0
    assert samples["blinker_events_queue_depth", frozenset({"bus": "web"}.items())] == 0.0
    assert samples["blinker_events_queue_dropped_total", frozenset({"bus": "web"}.items())] == 0.0
    assert samples["blinker_events_subscriptions_disabled", frozenset({"bus": "web"}.items())] == 0.0
    failed = {**web, "outcome": "failed"}
    assert samples["blinker_events_receiver_duration_seconds_count", frozenset(failed.items())] == 2.0
    assert (
        samples["blinker_events_receiver_duration_seconds_bucket", frozenset({**failed, "le": "0.005"}.items())] == 2.0
    )


SAMPLE = re.compile(r"^(\w+)\{(.*)\} (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scraped(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Each sample of a Prometheus text exposition: (name, labels) -> value.
    The labels OpenTelemetry adds for the instrumentation scope
    (``otel_scope_*``, in newer exporters) are left out."""
    samples = {}
    for line in text.splitlines():
        found = SAMPLE.match(line)
        if found is None:
            continue
        labels = frozenset((k, v) for k, v in LABEL.findall(found.group(2)) if not k.startswith("otel_scope_"))
        samples[found.group(1), labels] = float(found.group(3))
    return samples
