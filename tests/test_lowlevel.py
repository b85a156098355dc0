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

from .conftest import Demo, log_records

PACKAGE = Path(lowlevel.__file__).parent
INTEGRATIONS = [
    PACKAGE / "flask.py",
    PACKAGE / "_flask_config.py",
    *PACKAGE.glob("django/*.py"),
    *PACKAGE.glob("redis/*.py"),
    *PACKAGE.glob("testing/*.py"),
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
