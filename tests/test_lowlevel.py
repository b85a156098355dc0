"""The integrations (Flask, Django, the Redis bridge) use only public names
and :mod:`blinker_events.lowlevel`: no private core module, no private
attribute of a bus."""

from __future__ import annotations

import re
from pathlib import Path

from blinker_events import Event, EventBus, lowlevel

from .conftest import Demo

PACKAGE = Path(lowlevel.__file__).parent
INTEGRATIONS = [
    PACKAGE / "flask.py",
    PACKAGE / "_flask_config.py",
    *PACKAGE.glob("django/*.py"),
    *PACKAGE.glob("redis/*.py"),
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
