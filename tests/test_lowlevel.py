"""The integrations (Flask, Django, the Redis bridge) use only public names
and :mod:`blinker_events.lowlevel`: no private core module, no private
attribute of a bus."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from blinker_events import DeliveryReport, Event, EventBus, TypedEvent, lowlevel

from .conftest import Demo, hold_the_worker, log_records

PACKAGE = Path(lowlevel.__file__).parent
INTEGRATIONS = [
    PACKAGE / "flask.py",
    PACKAGE / "_flask_config.py",
    *PACKAGE.glob("django/*.py"),
    *PACKAGE.glob("redis/*.py"),
    *PACKAGE.glob("testing/*.py"),
    *PACKAGE.glob("otel/*.py"),
]
PRIVATE_CORE_IMPORT = re.compile(r"^\s*from (blinker_events\._|\.\._|blinker_events import _)", re.MULTILINE)
BUS_PRIVATE = re.compile(r"\b_?bus\._[a-z]")  # bus._x and self._bus._x


def test_no_integration_imports_a_private_core_module() -> None:
    offenders = [str(p.relative_to(PACKAGE)) for p in INTEGRATIONS if PRIVATE_CORE_IMPORT.search(p.read_text())]
    assert offenders == []


def test_no_integration_reads_a_private_attribute_of_a_bus() -> None:
    offenders = [str(p.relative_to(PACKAGE)) for p in INTEGRATIONS if BUS_PRIVATE.search(p.read_text())]
    assert offenders == []


def test_lowlevel_answers_what_the_integrations_ask(bus: EventBus) -> None:
    assert lowlevel.event_key(Event(Demo.PING)) == lowlevel.type_key(Demo.PING)
    assert not lowlevel.has_sync_receivers(bus, Event(Demo.PING))
    bus.subscribe(Demo.PING, lambda event: None)
    assert lowlevel.has_sync_receivers(bus, Event(Demo.PING))
    assert lowlevel.outlets(bus) == ()
    assert not lowlevel.bus_loop(bus).in_loop_thread()
    assert lowlevel.check_timeout(2) == 2.0
    assert set(lowlevel.SETTING_NAMES) == {f.name for f in lowlevel.BusSettings.__dataclass_fields__.values()}


@pytest.mark.asyncio
async def test_an_observer_sees_every_path_and_its_failure_is_only_logged(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[DeliveryReport] = []

    def broken(report: DeliveryReport) -> None:
        raise RuntimeError("observer bug")

    lowlevel.observe(bus, broken)
    lowlevel.observe(bus, seen.append)
    assert lowlevel.observers(bus) == (broken, seen.append)
    sync_report = bus.publish_sync(Event(Demo.PING))
    async_report = await bus.publish(Event(Demo.PING))
    nowait_report = await asyncio.wrap_future(bus.publish_nowait(Event(Demo.PING)))
    assert seen == [sync_report, async_report, nowait_report]
    assert all(r.ok for r in seen)
    assert len(log_records(caplog, logging.ERROR, "observer")) == 3
    assert lowlevel.unobserve(bus, broken)
    assert not lowlevel.unobserve(bus, broken)


def test_replace_history_keeps_the_newest_that_fit(new_bus: Any) -> None:
    bus = new_bus(history_size=2)
    reports = [DeliveryReport(Event(Demo.PING, {"n": n})) for n in range(3)]
    lowlevel.replace_history(bus, reports)
    assert bus.get_delivery_reports() == reports[1:]


class _Base(TypedEvent):
    n: int


class _Derived(_Base):
    pass


def test_type_matcher_says_whether_an_event_is_of_a_type_as_the_bus_delivers_it() -> None:
    string_event, base, derived = Event("a"), _Base(n=1), _Derived(n=2)
    assert [lowlevel.type_matcher(None)(e) for e in (string_event, base, derived)] == [True, True, True]
    assert [lowlevel.type_matcher("a")(e) for e in (string_event, base, derived)] == [True, False, False]
    assert [lowlevel.type_matcher(_Base)(e) for e in (string_event, base, derived)] == [False, True, True]
    assert [lowlevel.type_matcher(_Derived)(e) for e in (string_event, base, derived)] == [False, False, True]
    with pytest.raises(TypeError, match="event_type must be"):
        lowlevel.type_matcher(3)  # type: ignore[arg-type]


class Recording:
    """A minimal :class:`lowlevel.Hooks`: records what the bus calls, and
    where, and runs each receiver as it is."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def publish(self, event: Event, queued: bool) -> lowlevel.PublishEnd:
        self.calls.append(("publish", str(event.event_type), str(queued)))

        def end(report: DeliveryReport | None, error: BaseException | None) -> None:
            outcome = "no report" if report is None else "report"
            self.calls.append(("end", str(event.event_type), outcome, type(error).__name__))

        return end

    def receiver(self, event: Event, sub: Any, fn: Any, timeout: float | None) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(("receiver", str(event.event_type), str(timeout)))
            return fn(*args, **kwargs)

        return wrapped

    def skipped(self, event: Event, sub: Any, reason: str) -> None:
        self.calls.append(("skipped", str(event.event_type), reason))

    def inject(self, carrier: dict[str, str]) -> None:
        carrier["seen"] = "yes"

    def received(self, event: Event, carrier: Any, *, link: bool, attributes: Any) -> Any:
        raise AssertionError("no bridge here")


def test_instrument_calls_the_hooks_around_each_publish_and_receiver(new_bus: Any) -> None:
    bus = new_bus(failure_threshold=1)
    hooks = Recording()

    def broken(e: Event) -> None:
        raise ValueError("no")

    bus.subscribe("ok", lambda e: None, timeout=1.5)
    bus.subscribe("bad", broken)
    lowlevel.instrument(bus, hooks)
    assert lowlevel.instrumentation(bus) is hooks
    lowlevel.instrument(bus, hooks)  # the same again: nothing changes
    bus.publish_sync(Event("ok"))
    bus.publish_sync(Event("bad"))  # fails, and is disabled: that is announced
    bus.publish_sync(Event("bad"))
    bus.publish_nowait(Event("ok")).result(5)
    assert lowlevel.uninstrument(bus, hooks) is True
    assert lowlevel.uninstrument(bus, hooks) is False
    bus.publish_sync(Event("ok"))
    disabled = "SystemEventType.SUBSCRIBER_DISABLED"
    assert hooks.calls[:-2] == [
        ("publish", "ok", "False"),
        ("receiver", "ok", "1.5"),
        ("end", "ok", "report", "NoneType"),
        ("publish", "bad", "False"),
        ("receiver", "bad", "None"),
        ("publish", disabled, "False"),
        ("end", disabled, "report", "NoneType"),
        ("end", "bad", "report", "NoneType"),
        ("publish", "bad", "False"),
        ("skipped", "bad", "disabled"),
        ("end", "bad", "report", "NoneType"),
        ("publish", "ok", "True"),
    ]
    # The queued publish ends once queued: the worker may start on it first.
    assert sorted(hooks.calls[-2:]) == [("end", "ok", "report", "NoneType"), ("receiver", "ok", "1.5")]


def test_the_receiver_hook_runs_outside_the_previous_receivers_frame(bus: EventBus) -> None:
    # The hooks are the tracer's code: an event made while wrapping the
    # second receiver is not the first receiver's, though the first one ran
    # (and set its frame) just before in the same delivery.
    parents: list[str | None] = []

    class Tracing(Recording):
        def receiver(self, event: Event, sub: Any, fn: Any, timeout: float | None) -> Any:
            parents.append(Event("made-by-the-hook").parent_id)
            return super().receiver(event, sub, fn, timeout)

    bus.subscribe("ok", lambda e: None)
    bus.subscribe("ok", lambda e: None)
    lowlevel.instrument(bus, Tracing())
    assert len(bus.publish_sync(Event("ok")).succeeded) == 2
    assert parents == [None, None]


def test_a_second_instrumentation_is_refused_and_the_first_stays(bus: EventBus) -> None:
    first, second = Recording(), Recording()
    lowlevel.instrument(bus, first)
    with pytest.raises(ValueError, match=r"^hooks: .* is already instrumented by "):
        lowlevel.instrument(bus, second)
    assert lowlevel.uninstrument(bus, second) is False
    assert lowlevel.instrumentation(bus) is first
    lowlevel.uninstrument(bus, first)


def test_the_hooks_see_a_publish_the_outlets_refuse(bus: EventBus) -> None:
    class Refusing:
        takes_over = False

        def prepare(self, event: Event) -> object:
            raise ValueError("cannot carry it")

        def send(self, prepared: object) -> None: ...

        def close(self, timeout: float | None) -> None: ...

    hooks = Recording()
    bus.add_outlet(Refusing())
    lowlevel.instrument(bus, hooks)
    with pytest.raises(ValueError, match=r"^cannot carry it$"):
        bus.publish_sync(Event("x"))
    lowlevel.uninstrument(bus, hooks)
    assert hooks.calls == [("publish", "x", "False"), ("end", "x", "no report", "ValueError")]


def test_a_publish_whose_hooks_were_taken_off_as_it_began_runs_untraced(bus: EventBus) -> None:
    # The facade tests the slot, and the instrumented publish reads it again:
    # in between, another thread may have uninstrumented the bus.
    from blinker_events import _instrument

    calls: list[Event] = []
    receiver = calls.append
    sub = bus.subscribe("x", receiver)
    end = _instrument.start(bus._runtime, Event("x"), None, queued=False)
    assert end(None, None) is None  # nothing to end: nothing was begun
    assert bus.publish_sync(Event("x")).succeeded == [sub]
    assert len(calls) == 1


def test_published_by_names_the_receiver_whose_handling_made_the_event(bus: EventBus) -> None:
    made: list[Event] = []

    def first(event: Event) -> None:
        made.append(Event(Demo.PONG, {"by": "first"}))

    async def second(event: Event) -> None:
        made.append(Event(Demo.PONG, {"by": "second"}))

    one = bus.subscribe(Demo.PING, first)
    two = bus.subscribe(Demo.PING, second)
    top = Event(Demo.PING)
    assert lowlevel.published_by(top) is None
    bus.publish_sync(top)  # the sync one inline, the async one on the bus loop
    bus.publish_nowait(Event(Demo.PING)).result(5)  # both on the bus's threads
    assert sorted((e.data["by"], lowlevel.published_by(e)) for e in made) == [
        ("first", one.id),
        ("first", one.id),
        ("second", two.id),
        ("second", two.id),
    ]
    assert {e.parent_id for e in made[:2]} == {top.event_id}
    # Another process's subscription ids mean nothing here: a rebuilt event has none.
    assert lowlevel.published_by(Event.from_dict(made[0].to_dict())) is None


def test_left_running_counts_and_the_warning_names_what_a_shutdown_left_in_delivery(
    bus: EventBus, gate: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert lowlevel.left_running(bus) == 0
    _, future = hold_the_worker(bus, gate, first=7)
    bus.publish_nowait(Event(Demo.PING, {"n": 8}))
    assert bus.shutdown(timeout=0.3) == 1  # the one behind it; the one in delivery is not dropped
    assert lowlevel.left_running(bus) == 1
    assert log_records(caplog, logging.WARNING, "1 event(s) still being delivered after 0.3s, left running: Event(")
    assert "'n': 7" in log_records(caplog, logging.WARNING, "left running")[0].getMessage()
    gate.set()
    assert future.result(timeout=5).event.data == {"n": 7}  # it went on and ended
    assert bus.shutdown(timeout=5) == 0
    assert lowlevel.left_running(bus) == 0


class _ReprEndsThreads:
    def __repr__(self) -> str:
        raise SystemExit  # which would end a bus thread if it escaped


@pytest.mark.parametrize("limit", [0, 2, 5, 20, 53])
def test_describe_is_at_most_limit_characters_even_for_an_object_whose_repr_raises(limit: int) -> None:
    # Only strings reach the assertions: pytest's own repr of the object
    # would raise the SystemExit.
    hostile = _ReprEndsThreads()
    unreadable = lowlevel.describe(hostile, 300)
    assert re.fullmatch(r"<_ReprEndsThreads object at 0x[0-9a-f]+ \(repr raised SystemExit\)>", unreadable)
    lengths = [len(lowlevel.describe(obj, limit)) for obj in (hostile, "abcdefghijkl", list(range(30)))]
    assert max(lengths) <= limit
    cut = lowlevel.describe(hostile, limit)
    assert cut == (unreadable[: limit - 4] + "...>" if limit > 4 else unreadable[:limit])


def test_describe_marks_a_cut_only_where_the_limit_leaves_room_for_more() -> None:
    assert lowlevel.describe("abcdefghijkl", 8) == "'abcd..."
    assert lowlevel.describe("abcdefghijkl", 3) == "'ab"
    assert lowlevel.describe("abcdefghijkl", 0) == ""
    assert lowlevel.describe("abcdefghijkl", 14) == "'abcdefghijkl'"  # not cut
