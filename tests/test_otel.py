"""blinker_events.otel's spans, with the real OpenTelemetry SDK and its
in-memory exporter: every path, nesting, failures, timeouts, skips,
cancellation, uninstrumenting, bad arguments, hostile objects."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from blinker_events import Event, EventBus, QueueFullError, default_bus, lowlevel, otel
from tests.conftest import BusFactory, wait_until


class Traced:
    """A tracer provider of the test's own, exporting to memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, [span.name for span in self.spans()]
        return found[0]


@pytest.fixture
def traced() -> Iterator[Traced]:
    made = Traced()
    yield made
    made.provider.shutdown()


@pytest.fixture
def instrumented(bus: EventBus, traced: Traced) -> Iterator[otel.Instrumentation]:
    with otel.instrument(bus, tracer_provider=traced.provider) as instrumentation:
        yield instrumentation


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def received(e: Event) -> None:
    """A receiver that does nothing (its name shows in the spans)."""


# -- publish_sync -------------------------------------------------------------


def test_publish_sync_makes_a_producer_span_and_a_consumer_child_per_receiver(bus, traced, instrumented) -> None:
    bus.subscribe("order.created", received, timeout=2.5)
    event = Event("order.created", {"card": "4111"})
    bus.publish_sync(event)
    send = traced.one("send order.created")
    process = traced.one("process order.created")
    assert send.kind is SpanKind.PRODUCER
    assert process.kind is SpanKind.CONSUMER
    assert attrs(send) == {
        "messaging.system": "blinker_events",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "order.created",
        "messaging.message.id": event.event_id,
        "blinker_events.queued": False,
        "blinker_events.succeeded": 1,
    }
    sub = bus.get_subscriptions("order.created")[0]
    assert attrs(process) == {
        "messaging.system": "blinker_events",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "order.created",
        "messaging.message.id": event.event_id,
        "blinker_events.receiver": sub.name,
        "blinker_events.subscription.id": sub.id,
        "blinker_events.timeout": 2.5,
        "blinker_events.outcome": "succeeded",
    }
    assert parent_of(process) == send.context.span_id
    assert process.context.trace_id == send.context.trace_id
    assert send.status.status_code is StatusCode.UNSET


def test_the_send_span_is_a_child_of_the_span_current_at_the_publish(bus, traced, instrumented) -> None:
    bus.subscribe("x", received)
    with traced.provider.get_tracer("app").start_as_current_span("request") as request:
        bus.publish_sync(Event("x"))
    assert parent_of(traced.one("send x")) == request.get_span_context().span_id


def test_what_a_sync_receiver_publishes_is_traced_under_its_process_span(bus, traced, instrumented) -> None:
    bus.subscribe("outer", lambda e: bus.publish_sync(Event("inner")))
    bus.subscribe("inner", received)
    bus.publish_sync(Event("outer"))
    outer = traced.one("process outer")
    inner_send = traced.one("send inner")
    assert parent_of(inner_send) == outer.context.span_id
    assert parent_of(traced.one("process inner")) == inner_send.context.span_id
    assert parent_of(outer) == traced.one("send outer").context.span_id


def test_async_receivers_of_publish_sync_without_a_loop_run_on_the_bus_loop_under_the_span(
    bus, traced, instrumented
) -> None:
    threads: list[str] = []

    async def on_loop(e: Event) -> None:
        threads.append(threading.current_thread().name)
        await asyncio.sleep(0)
        bus.publish_sync(Event("inner"))

    bus.subscribe("outer", on_loop)
    bus.subscribe("inner", received)
    bus.publish_sync(Event("outer"))
    assert len(threads) == 1
    assert threads[0] != threading.current_thread().name
    process = traced.one("process outer")
    assert parent_of(process) == traced.one("send outer").context.span_id
    assert parent_of(traced.one("send inner")) == process.context.span_id


@pytest.mark.asyncio
async def test_publish_sync_on_a_running_loop_schedules_async_receivers_under_the_span(
    bus, traced, instrumented
) -> None:
    done = asyncio.Event()

    async def later(e: Event) -> None:
        await asyncio.sleep(0)
        done.set()

    bus.subscribe("x", later)
    report = bus.publish_sync(Event("x"))
    assert len(report.scheduled) == 1
    await asyncio.wait_for(done.wait(), 5)
    assert await asyncio.to_thread(wait_until, lambda: traced.named("process x"), 5)
    assert parent_of(traced.one("process x")) == traced.one("send x").context.span_id
    assert attrs(traced.one("send x"))["blinker_events.scheduled"] == 1


# -- await publish ------------------------------------------------------------


@pytest.mark.asyncio
async def test_await_publish_traces_async_receivers_in_tasks_and_sync_ones_on_the_pool(
    bus, traced, instrumented
) -> None:
    async def first(e: Event) -> None:
        await asyncio.sleep(0)
        await bus.publish(Event("from-async"))

    async def second(e: Event) -> None:
        await asyncio.sleep(0)

    def on_pool(e: Event) -> None:
        bus.publish_sync(Event("from-pool"))

    for receiver in (first, second, on_pool):
        bus.subscribe("x", receiver)
    bus.subscribe("from-async", received)
    bus.subscribe("from-pool", received)
    await bus.publish(Event("x"))
    send = traced.one("send x")
    processes = {attrs(span)["blinker_events.receiver"].rsplit(".", 1)[-1]: span for span in traced.named("process x")}
    assert sorted(processes) == ["first", "on_pool", "second"]
    assert {parent_of(span) for span in processes.values()} == {send.context.span_id}
    assert parent_of(traced.one("send from-async")) == processes["first"].context.span_id
    assert parent_of(traced.one("send from-pool")) == processes["on_pool"].context.span_id


@pytest.mark.asyncio
async def test_a_single_async_receiver_in_the_publishers_task_is_traced_and_nests(bus, traced, instrumented) -> None:
    async def only(e: Event) -> None:
        await asyncio.sleep(0)
        await bus.publish(Event("inner"))

    bus.subscribe("outer", only)
    bus.subscribe("inner", received)
    await bus.publish(Event("outer"))
    process = traced.one("process outer")
    assert parent_of(process) == traced.one("send outer").context.span_id
    assert parent_of(traced.one("send inner")) == process.context.span_id
    # The publisher's own context is its own again afterwards.
    assert not trace.get_current_span().get_span_context().is_valid


@pytest.mark.asyncio
async def test_publish_sync_inside_sync_to_async_traces_async_receivers_on_the_callers_loop(
    bus, traced, instrumented
) -> None:
    from asgiref.sync import sync_to_async

    loops: list[asyncio.AbstractEventLoop] = []

    async def on_outer_loop(e: Event) -> None:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)

    bus.subscribe("x", on_outer_loop)
    await sync_to_async(lambda: bus.publish_sync(Event("x")))()
    assert loops == [asyncio.get_running_loop()]
    assert parent_of(traced.one("process x")) == traced.one("send x").context.span_id


@pytest.mark.asyncio
async def test_sync_receivers_on_asgirefs_thread_sensitive_executor_are_traced(new_bus: BusFactory, traced) -> None:
    bus = new_bus(sync_executor="thread_sensitive")
    bus.subscribe("x", lambda e: bus.publish_sync(Event("inner")))
    bus.subscribe("inner", received)
    with otel.instrument(bus, tracer_provider=traced.provider):
        await bus.publish(Event("x"))
    process = traced.one("process x")
    assert parent_of(process) == traced.one("send x").context.span_id
    assert parent_of(traced.one("send inner")) == process.context.span_id


# -- publish_nowait -----------------------------------------------------------


def test_publish_nowait_ends_its_span_when_queued_and_its_receivers_are_children(
    bus, traced, instrumented, gate
) -> None:
    started = threading.Event()

    def held(e: Event) -> None:
        started.set()
        gate.wait(10)

    async def on_loop(e: Event) -> None:
        await asyncio.sleep(0)

    bus.subscribe("x", held)
    bus.subscribe("x", on_loop)
    future = bus.publish_nowait(Event("x"))
    send = traced.one("send x")  # ended already, while the receiver is held
    assert attrs(send)["blinker_events.queued"] is True
    assert started.wait(5)
    assert traced.named("process x") == []
    gate.set()
    future.result(5)
    assert wait_until(lambda: len(traced.named("process x")) == 2, 5)
    for process in traced.named("process x"):
        assert parent_of(process) == send.context.span_id


def test_a_refused_publish_nowait_ends_its_span_with_the_error(new_bus: BusFactory, traced, gate) -> None:
    bus = new_bus(queue_size=1, overflow="raise")
    bus.subscribe("x", lambda e: gate.wait(10))
    with otel.instrument(bus, tracer_provider=traced.provider):
        bus.publish_nowait(Event("x"))
        assert wait_until(lambda: bus.stats()["queued"] == 0, 5)  # the first one is on the worker
        bus.publish_nowait(Event("x"))
        with pytest.raises(QueueFullError):
            bus.publish_nowait(Event("x"))
        refused = traced.spans()[-1]
        assert refused.name == "send x"
        assert refused.status.status_code is StatusCode.ERROR
        assert attrs(refused)["error.type"] == "QueueFullError"
        gate.set()


# -- outcomes -----------------------------------------------------------------


def test_a_failing_receiver_span_has_error_status_the_exception_and_its_type(bus, traced, instrumented) -> None:
    def broken(e: Event) -> None:
        raise KeyError("missing")

    bus.subscribe("x", broken)
    report = bus.publish_sync(Event("x"))
    assert len(report.failed) == 1
    process = traced.one("process x")
    assert process.status.status_code is StatusCode.ERROR
    assert attrs(process)["error.type"] == "KeyError"
    assert attrs(process)["blinker_events.outcome"] == "failed"
    [exception] = [e for e in process.events if e.name == "exception"]
    assert exception.attributes is not None
    assert exception.attributes["exception.type"] == "KeyError"
    assert attrs(traced.one("send x"))["blinker_events.failed"] == 1


def test_a_sync_receiver_past_its_timeout_is_marked_timed_out(bus, traced, instrumented) -> None:
    bus.subscribe("x", lambda e: time.sleep(0.3), timeout=0.1)
    report = bus.publish_sync(Event("x"))
    assert len(report.timed_out) == 1
    process = traced.one("process x")
    assert attrs(process)["blinker_events.outcome"] == "timed_out"
    assert attrs(process)["blinker_events.timeout"] == 0.1
    assert process.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize("receivers", [1, 2])
@pytest.mark.asyncio
async def test_an_async_receiver_cancelled_at_its_timeout_is_marked_timed_out(
    bus, traced, instrumented, receivers
) -> None:
    async def slow(e: Event) -> None:
        await asyncio.sleep(30)

    async def quick(e: Event) -> None:
        await asyncio.sleep(0)

    bus.subscribe("x", slow, timeout=0.2)
    if receivers == 2:
        bus.subscribe("x", quick)
    started = time.monotonic()
    report = await bus.publish(Event("x"))
    assert time.monotonic() - started < 5
    assert len(report.timed_out) == 1
    assert await asyncio.to_thread(wait_until, lambda: len(traced.named("process x")) == receivers, 5)
    outcomes = sorted(attrs(span)["blinker_events.outcome"] for span in traced.named("process x"))
    assert outcomes == (["timed_out"] if receivers == 1 else ["succeeded", "timed_out"])


@pytest.mark.asyncio
async def test_a_cancelled_publish_marks_its_receivers_spans_cancelled(bus, traced, instrumented) -> None:
    inside = asyncio.Event()

    async def waiting(e: Event) -> None:
        inside.set()
        await asyncio.sleep(30)

    bus.subscribe("x", waiting)
    task = asyncio.create_task(bus.publish(Event("x")))
    await asyncio.wait_for(inside.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    process = traced.one("process x")
    assert attrs(process)["blinker_events.outcome"] == "cancelled"
    assert attrs(process)["blinker_events.cancel_reason"] == "its task was cancelled"
    send = traced.one("send x")
    assert send.status.status_code is StatusCode.UNSET  # a cancellation is no error
    assert attrs(send)["blinker_events.cancelled"] == 1


def test_a_disabled_receiver_gets_a_skipped_span(new_bus: BusFactory, traced) -> None:
    bus = new_bus(failure_threshold=1)

    def broken(e: Event) -> None:
        raise ValueError("no")

    bus.subscribe("x", broken)
    with otel.instrument(bus, tracer_provider=traced.provider):
        bus.publish_sync(Event("x"))
        bus.publish_sync(Event("x"))
    outcomes = [
        (attrs(s)["blinker_events.outcome"], attrs(s).get("blinker_events.skip_reason"))
        for s in traced.named("process x")
    ]
    assert outcomes == [("failed", None), ("skipped", "disabled")]


def test_a_receiver_the_cycle_guard_stops_gets_a_skipped_span(bus, traced, instrumented) -> None:
    def again(e: Event) -> None:
        bus.publish_sync(Event("x"))

    bus.subscribe("x", again)
    report = bus.publish_sync(Event("x"))
    assert report.ok
    spans = traced.named("process x")
    assert [attrs(s)["blinker_events.outcome"] for s in spans] == ["skipped", "succeeded"]
    assert attrs(spans[0])["blinker_events.skip_reason"] == "cycle"
    assert parent_of(spans[0]) == traced.named("send x")[0].context.span_id  # the inner publish's


# -- instrumenting and undoing it ---------------------------------------------


def test_uninstrument_stops_the_spans_frees_the_slot_and_is_idempotent(bus, traced) -> None:
    bus.subscribe("x", received)
    instrumentation = otel.instrument(bus, tracer_provider=traced.provider)
    assert lowlevel.instrumentation(bus) is not None
    bus.publish_sync(Event("x"))
    instrumentation.uninstrument()
    instrumentation.uninstrument()
    assert lowlevel.instrumentation(bus) is None
    assert lowlevel.observers(bus) == ()  # the metrics' observer went too
    assert instrumentation.active is False
    bus.publish_sync(Event("x"))
    assert [span.name for span in traced.spans()] == ["process x", "send x"]
    again = otel.instrument(bus, tracer_provider=traced.provider)  # may be instrumented anew
    again.uninstrument()


def test_instrumenting_an_instrumented_bus_is_refused_and_changes_nothing(bus, traced, instrumented) -> None:
    hooks = lowlevel.instrumentation(bus)
    with pytest.raises(ValueError, match=r"^bus: .* is already instrumented"):
        otel.instrument(bus, tracer_provider=traced.provider)
    assert lowlevel.instrumentation(bus) is hooks


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bus": "default"}, r"^bus must be an EventBus or None, not str$"),
        ({"tracer_provider": object()}, r"^tracer_provider must be a TracerProvider or None, not object$"),
        ({"meter_provider": 3}, r"^meter_provider must be a MeterProvider or None, not int$"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_instrumented(bus, kwargs, message) -> None:
    kwargs = {"bus": bus, **kwargs}
    with pytest.raises(TypeError, match=message):
        otel.instrument(**kwargs)
    assert lowlevel.instrumentation(bus) is None


def test_without_a_bus_the_default_bus_is_instrumented(traced) -> None:
    with otel.instrument(tracer_provider=traced.provider) as instrumentation:
        assert instrumentation.bus is default_bus
        assert lowlevel.instrumentation(default_bus) is not None
    assert lowlevel.instrumentation(default_bus) is None


def test_a_publish_refused_for_its_arguments_leaves_no_span(bus, traced, instrumented) -> None:
    with pytest.raises(TypeError, match=r"^event must be an Event"):
        bus.publish_sync("x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        bus.publish_nowait(Event("x"), timeout=-1)
    assert traced.spans() == []


def test_lowlevel_instrument_refuses_an_object_without_the_hooks(bus) -> None:
    with pytest.raises(TypeError, match=r"^hooks must have a publish\(\) method$"):
        lowlevel.instrument(bus, object())  # type: ignore[arg-type]
    assert lowlevel.instrumentation(bus) is None


# -- hostile objects and load -------------------------------------------------


class Hostile(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class HostileReceiver:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __call__(self, e: Event) -> None:
        raise Hostile


def test_hostile_receivers_and_exceptions_still_give_their_spans(bus, traced, instrumented) -> None:
    bus.subscribe("x", HostileReceiver())
    report = bus.publish_sync(Event("x", {"big": "y" * 1_000_000}))
    assert len(report.failed) == 1
    process = traced.one("process x")
    assert attrs(process)["error.type"] == "Hostile"
    assert process.status.status_code is StatusCode.ERROR
    assert all(len(str(value)) <= lowlevel.DESCRIBE_LIMIT for value in attrs(process).values())


def test_many_threads_publishing_get_one_trace_each(bus, traced, instrumented) -> None:
    bus.subscribe("x", received)
    barrier = threading.Barrier(8)

    def publisher() -> None:
        barrier.wait(5)
        for _ in range(50):
            bus.publish_sync(Event("x"))

    threads = [threading.Thread(target=publisher) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    sends = {span.context.span_id: span for span in traced.named("send x")}
    processes = traced.named("process x")
    assert len(sends) == len(processes) == 400
    assert {parent_of(span) for span in processes} == set(sends)
    assert all(sends[parent_of(span)].context.trace_id == span.context.trace_id for span in processes)  # type: ignore[index]
    assert len({span.context.trace_id for span in sends.values()}) == 400
    assert {parent_of(span) for span in sends.values()} == {None}


class Broken:
    """A span processor that raises, as a buggy one of the application's may."""

    def __init__(self, when: str) -> None:
        self.when = when

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.when == "start":
            raise RuntimeError("processor broke")

    def on_end(self, span: Any) -> None:
        if self.when == "end":
            raise RuntimeError("processor broke")

    def shutdown(self) -> None: ...

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@pytest.mark.parametrize("when", ["start", "end"])
def test_a_span_processor_that_raises_is_logged_and_the_publish_goes_on(bus, when, caplog) -> None:
    provider = TracerProvider()
    provider.add_span_processor(Broken(when))  # type: ignore[arg-type]
    calls: list[Event] = []
    bus.subscribe("x", calls.append)
    with otel.instrument(bus, tracer_provider=provider):
        report = bus.publish_sync(Event("x"))
    assert report.ok
    assert len(calls) == 1
    logged = [r for r in caplog.records if r.name == "blinker_events.otel"]
    assert len(logged) == 2  # the send span and the process span
    assert all("OpenTelemetry" in r.getMessage() for r in logged)


def test_a_scheduled_receiver_on_a_loop_closed_under_it_ends_its_span_cancelled(
    bus, traced, instrumented, caplog
) -> None:
    started = threading.Event()

    async def waiting(e: Event) -> None:
        started.set()
        await asyncio.sleep(30)

    bus.subscribe("x", waiting)
    loop = asyncio.new_event_loop()

    async def publish_then_return() -> None:
        bus.publish_sync(Event("x"))
        await asyncio.sleep(0.05)

    loop.run_until_complete(publish_then_return())
    assert started.is_set()
    loop.close()  # without cancelling the receiver's task
    import gc

    assert wait_until(lambda: gc.collect() is not None and len(traced.named("process x")) == 1, 5)
    process = traced.one("process x")
    assert attrs(process)["blinker_events.outcome"] == "cancelled"
    assert attrs(process)["blinker_events.cancel_reason"] == "its loop was closed before it ended"
    assert not [r for r in caplog.records if "detach" in r.getMessage()]


def test_instrumenting_and_uninstrumenting_while_threads_publish_loses_nothing(bus, traced) -> None:
    calls = []
    bus.subscribe("x", calls.append)
    stop = threading.Event()
    errors: list[BaseException] = []
    published: list[int] = []

    def publisher() -> None:
        while not stop.is_set():
            try:
                assert bus.publish_sync(Event("x")).ok
                assert bus.publish_nowait(Event("x")).result(10).ok
                published.append(2)
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=publisher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(50):
        otel.instrument(bus, tracer_provider=traced.provider).uninstrument()
    stop.set()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert lowlevel.instrumentation(bus) is None
    assert len(calls) == sum(published)
    spans = traced.spans()
    sends = {s.context.span_id for s in spans if s.name == "send x"}
    assert all(parent_of(s) in sends for s in spans if s.name == "process x")


def test_publish_nowait_from_many_threads_keeps_each_receiver_under_its_publish(bus, traced, instrumented) -> None:
    bus.subscribe("x", received)
    futures = []
    lock = threading.Lock()

    def publisher() -> None:
        for _ in range(50):
            future = bus.publish_nowait(Event("x"))
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=publisher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for future in futures:
        assert future.result(10).ok
    assert wait_until(lambda: len(traced.named("process x")) == 200, 10)
    by_id = {s.context.span_id: s for s in traced.named("send x")}
    events = {attrs(s)["messaging.message.id"]: s for s in by_id.values()}
    for process in traced.named("process x"):
        parent = by_id[parent_of(process)]  # type: ignore[index]
        assert events[attrs(process)["messaging.message.id"]] is parent
