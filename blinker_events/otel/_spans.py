"""The spans: a :class:`~blinker_events.lowlevel.Hooks` that traces.

One PRODUCER span ``send <type>`` per publish, current while the publish
runs (so it is the parent of everything below it and is what a bridge
carries); one CONSUMER span ``process <type>`` per receiver, child of the
publish span and current while the receiver runs; a CONSUMER span
``receive <type>`` around the local publish of an event that came over a
bridge. Names and attributes follow OpenTelemetry's messaging semantic
conventions (``messaging.*``, ``error.type``); what they have no name for
is under ``blinker_events.*``. Neither an event's data nor its source ever
goes into a span: either may hold what must not leave the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from inspect import isawaitable
from time import perf_counter
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from .. import DeliveryReport, Event, Subscription
from ..lowlevel import DESCRIBE_LIMIT, PublishEnd, describe, event_key, shown_name

__all__ = ["Tracing"]

SYSTEM = "blinker_events"

#: How close to its timeout a cancelled async receiver must be for its
#: cancellation to be taken for the bus's timeout (the bus cancels at the
#: deadline counted from the publish, a little before the receiver began).
_TIMEOUT_SLACK = 0.01

#: Bounds on what is read from another process's trace headers.
_MAX_HEADERS = 8
_MAX_HEADER_CHARS = 1024


logger = logging.getLogger("blinker_events.otel")


def _start_span(tracer: trace.Tracer, name: str, **options: Any) -> trace.Span:
    """``tracer.start_span``, which runs the application's span processors
    and sampler: what they raise is logged, never the publisher's or the
    receiver's, and the span is then a no-op one."""
    try:
        return tracer.start_span(name, **options)
    except Exception:
        logger.exception("OpenTelemetry: starting span %r failed; it is not recorded", name)
        return trace.INVALID_SPAN


def _end_span(span: trace.Span) -> None:
    try:
        span.end()
    except Exception:
        logger.exception("OpenTelemetry: ending a span failed")


def _cut(text: str) -> str:
    return text if len(text) <= DESCRIBE_LIMIT else text[: DESCRIBE_LIMIT - 3] + "..."


#: Event type names by type key, as :func:`destination` gives them: made
#: once per type, not per span (emptied when full: string types may be many).
_NAMES: dict[Any, str] = {}
_NAMES_MAX = 4096


def destination(event: Event) -> str:
    """The event type's name as spans and metrics give it (bounded)."""
    key = event_key(event)
    name = _NAMES.get(key)
    if name is None:
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
        name = _NAMES[key] = shown_name(event.event_type)
    return name


class Tracing:
    """The tracing half of an instrumentation: the bus's hooks. Durations
    of receivers go to ``record(event, outcome, seconds)`` (the metrics)."""

    def __init__(self, tracer: trace.Tracer, record: Callable[[Event, str, float], None]) -> None:
        self._tracer = tracer
        self._record = record

    # -- publishes -----------------------------------------------------------

    def publish(self, event: Event, queued: bool) -> PublishEnd:
        name = destination(event)
        span = _start_span(
            self._tracer,
            f"send {name}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
                "messaging.destination.name": name,
                "messaging.message.id": event.event_id,
                "blinker_events.queued": queued,
            },
        )
        if not span.is_recording():
            # A no-op tracer's span (nothing to record, and an invalid
            # context: the current one stays current) or a sampled-out one
            # (whose context still goes to the receivers and the bridges).
            if not span.get_span_context().is_valid:
                return _nothing
            token = context.attach(trace.set_span_in_context(span))
            return lambda report, error: context.detach(token)
        token = context.attach(trace.set_span_in_context(span))

        def end(report: DeliveryReport | None, error: BaseException | None) -> None:
            try:
                if report is not None:
                    _summarise(span, report)
                if error is not None and not isinstance(error, asyncio.CancelledError):
                    _failed(span, error)
            finally:
                context.detach(token)
                _end_span(span)

        return end

    # -- receivers -----------------------------------------------------------

    def receiver(
        self, event: Event, sub: Subscription, fn: Callable[..., Any], timeout: float | None
    ) -> Callable[..., Any]:
        if sub.is_async:
            return lambda *args, **kwargs: self._call_async(event, sub, fn, timeout, args, kwargs)
        return lambda *args, **kwargs: self._call_sync(event, sub, fn, timeout, args, kwargs)

    def _start(self, event: Event, sub: Subscription, timeout: float | None) -> trace.Span:
        name = destination(event)
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": name,
            "messaging.message.id": event.event_id,
            "blinker_events.receiver": _cut(sub.name),
            "blinker_events.subscription.id": sub.id,
        }
        if timeout is not None:
            attributes["blinker_events.timeout"] = timeout
        return _start_span(self._tracer, f"process {name}", kind=SpanKind.CONSUMER, attributes=attributes)

    def _end(self, event: Event, span: trace.Span, outcome: str, started: float) -> None:
        span.set_attribute("blinker_events.outcome", outcome)
        if outcome == "timed_out":
            span.set_status(Status(StatusCode.ERROR, "the receiver overran its timeout"))
        _end_span(span)
        self._record(event, outcome, perf_counter() - started)

    def _call_sync(
        self,
        event: Event,
        sub: Subscription,
        fn: Callable[..., Any],
        timeout: float | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        span = self._start(event, sub, timeout)
        token = context.attach(trace.set_span_in_context(span)) if span.get_span_context().is_valid else None
        started = perf_counter()
        outcome = "failed"
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _failed(span, exc)
            raise
        else:
            if result is not None and isawaitable(result):
                # The bus closes it and reports the receiver failed (see _sync).
                span.set_attribute("error.type", "TypeError")
                span.set_status(Status(StatusCode.ERROR, "a sync receiver returned an awaitable"))
            elif timeout is not None and perf_counter() - started > timeout:
                outcome = "timed_out"
            else:
                outcome = "succeeded"
            return result
        finally:
            if token is not None:
                context.detach(token)
            self._end(event, span, outcome, started)

    def _call_async(
        self,
        event: Event,
        sub: Subscription,
        fn: Callable[..., Any],
        timeout: float | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> _Traced:
        # Called where the bus calls the receiver, so what calling it raises
        # is raised there, as without tracing; its span starts with its first step.
        try:
            awaitable = fn(*args, **kwargs)
        except BaseException as exc:
            span = self._start(event, sub, timeout)
            _failed(span, exc)
            self._end(event, span, "failed", perf_counter())
            raise
        return _Traced(self, event, sub, timeout, awaitable)

    def _drive(
        self, event: Event, sub: Subscription, timeout: float | None, awaitable: Any
    ) -> Generator[Any, Any, Any]:
        span = self._start(event, sub, timeout)
        token = context.attach(trace.set_span_in_context(span)) if span.get_span_context().is_valid else None
        started = perf_counter()
        outcome = "failed"
        try:
            result = yield from awaitable.__await__()
        except GeneratorExit:
            # Closed from outside, not in its task's context (a loop closed
            # under it dropped the task): that context is gone, nothing to detach.
            token = None
            outcome = "cancelled"
            span.set_attribute("blinker_events.cancel_reason", "its loop was closed before it ended")
            raise
        except asyncio.CancelledError as exc:
            elapsed = perf_counter() - started
            if timeout is not None and elapsed >= timeout - _TIMEOUT_SLACK:
                outcome = "timed_out"
            else:
                outcome = "cancelled"
                message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else "its task was cancelled"
                span.set_attribute("blinker_events.cancel_reason", _cut(message))
            raise
        except BaseException as exc:
            _failed(span, exc)
            raise
        else:
            outcome = "succeeded"
            return result
        finally:
            try:
                if token is not None:
                    context.detach(token)
            finally:
                self._end(event, span, outcome, started)

    # -- skipped -------------------------------------------------------------

    def skipped(self, event: Event, sub: Subscription, reason: str) -> None:
        span = self._start(event, sub, None)
        span.set_attribute("blinker_events.skip_reason", reason)
        span.set_attribute("blinker_events.outcome", "skipped")
        _end_span(span)

    # -- bridges -------------------------------------------------------------

    def inject(self, carrier: dict[str, str]) -> None:
        propagate.inject(carrier)

    def received(self, event: Event, carrier: Mapping[str, str], *, link: bool, attributes: Mapping[str, str]) -> Any:
        return self._received(event, carrier, link, attributes)

    @contextmanager
    def _received(
        self, event: Event, carrier: Mapping[str, str], link: bool, attributes: Mapping[str, str]
    ) -> Iterator[None]:
        headers = {
            key: value
            for key, value in list(carrier.items())[:_MAX_HEADERS]
            if isinstance(key, str) and isinstance(value, str) and len(value) <= _MAX_HEADER_CHARS
        }
        producer = trace.get_current_span(propagate.extract(headers)).get_span_context()
        name = destination(event)
        span_attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "receive",
            "messaging.operation.name": "receive",
            "messaging.destination.name": name,
            "messaging.message.id": event.event_id,
            **{key: _cut(str(value)) for key, value in attributes.items()},
        }
        if link:
            # A work queue's entry: a trace of its own, linked to the producer's.
            links = [Link(producer)] if producer.is_valid else []
            span = _start_span(
                self._tracer,
                f"receive {name}",
                context=context.Context(),
                kind=SpanKind.CONSUMER,
                attributes=span_attributes,
                links=links,
            )
        else:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(producer)) if producer.is_valid else None
            span = _start_span(
                self._tracer, f"receive {name}", context=parent, kind=SpanKind.CONSUMER, attributes=span_attributes
            )
        token = context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            context.detach(token)
            _end_span(span)


def _nothing(report: DeliveryReport | None, error: BaseException | None) -> None:
    """The end of a publish a no-op tracer traced."""


class _Traced:
    """An async receiver's awaitable under its span: the span starts when
    the receiver's first step runs, in its own task (or the publisher's),
    and ends with it. Closed unstarted, it closes the receiver's awaitable
    (which would warn that it was never awaited)."""

    __slots__ = ("_awaitable", "_event", "_sub", "_timeout", "_tracing")

    def __init__(
        self, tracing: Tracing, event: Event, sub: Subscription, timeout: float | None, awaitable: Any
    ) -> None:
        self._tracing = tracing
        self._event = event
        self._sub = sub
        self._timeout = timeout
        self._awaitable = awaitable

    def __await__(self) -> Generator[Any, Any, Any]:
        return self._tracing._drive(self._event, self._sub, self._timeout, self._awaitable)

    def close(self) -> None:
        close = getattr(self._awaitable, "close", None)
        if close is not None:
            close()


def _failed(span: trace.Span, error: BaseException) -> None:
    span.set_attribute("error.type", type(error).__qualname__)
    try:
        span.record_exception(error)
    except Exception:  # its __str__ raised: the SDK calls it
        span.add_event("exception", {"exception.type": type(error).__qualname__, "exception.message": describe(error)})
    span.set_status(Status(StatusCode.ERROR, describe(error)))


#: The publish span's count attributes, by report field.
_COUNTS = (
    ("failed", "blinker_events.failed"),
    ("timed_out", "blinker_events.timed_out"),
    ("skipped", "blinker_events.skipped"),
    ("cancelled", "blinker_events.cancelled"),
    ("scheduled", "blinker_events.scheduled"),
)


def _summarise(span: trace.Span, report: DeliveryReport) -> None:
    """The publish's outcome counts on its span."""
    span.set_attribute("blinker_events.succeeded", len(report.succeeded))
    for field, attribute in _COUNTS:
        count = len(getattr(report, field))
        if count:
            span.set_attribute(attribute, count)
    if report.handed_off:
        span.set_attribute("blinker_events.handed_off", True)
