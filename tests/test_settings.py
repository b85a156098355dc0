"""Settings as one immutable value: ``bus.settings`` is a frozen
:class:`BusSettings`, ``configure`` swaps a wholly checked new one in, and
the Flask and Django tables are derived from its fields."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from blinker_events import EventBus
from blinker_events._settings import SETTING_NAMES, BusSettings, default_of


def test_settings_is_a_frozen_value_that_configure_replaces(bus: EventBus) -> None:
    before = bus.settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.timeout = 1.0  # type: ignore[misc]
    bus.configure(timeout=2.0, max_depth=5)
    after = bus.settings
    assert after is not before
    assert (before.timeout, before.max_depth) == (None, 16)  # a value read earlier never changes
    assert (after.timeout, after.max_depth) == (2.0, 5)
    assert (bus.timeout, bus.max_depth) == (2.0, 5)


def test_every_setter_and_property_goes_through_the_one_value(bus: EventBus) -> None:
    values = {
        "timeout": 1.5,
        "propagate_exceptions": True,
        "failure_threshold": 7,
        "history_size": 3,
        "max_depth": 4,
        "queue_size": 9,
        "overflow": "raise",
        "sync_executor": "thread_sensitive",
        "slow_after": 0.5,
    }
    assert set(values) == set(SETTING_NAMES)
    for name, value in values.items():
        getattr(bus, f"set_{name}")(value)
        assert getattr(bus.settings, name) == value
        assert getattr(bus, name) == value
    assert (bus._queue.maxsize, bus._queue.overflow) == (9, "raise")


def test_configure_with_one_bad_value_changes_nothing(bus: EventBus) -> None:
    before = bus.settings
    with pytest.raises(ValueError, match="max_depth"):
        bus.configure(timeout=3.0, history_size=5, max_depth=0)
    assert bus.settings is before
    with pytest.raises(TypeError, match="unknown setting"):
        bus.configure(timeout=3.0, colour="blue")
    assert bus.settings is before


def test_the_constructor_checks_as_the_settings_do() -> None:
    with pytest.raises(TypeError, match="failure_threshold"):
        EventBus(failure_threshold="3")  # type: ignore[arg-type]
    bus = EventBus(timeout=4, history_size=0)
    assert bus.settings == BusSettings(timeout=4.0, history_size=0)
    assert type(bus.settings.timeout) is float


def test_a_configure_is_seen_whole_by_concurrent_readers(bus: EventBus) -> None:
    """Readers of ``bus.settings`` never see half of a configure."""
    seen_mixed = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            s = bus.settings
            if (s.timeout == 1.0) != (s.max_depth == 2):
                seen_mixed.append(s)

    bus.configure(timeout=5.0, max_depth=3)
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(2000):
            bus.configure(timeout=1.0, max_depth=2)
            bus.configure(timeout=5.0, max_depth=3)
    finally:
        stop.set()
        reader.join()
    assert seen_mixed == []


def test_the_history_follows_history_size(bus: EventBus) -> None:
    bus.configure(history_size=2)
    assert bus._history.size == 2
    bus.configure(history_size=0)
    assert not bus._history.enabled


def test_flask_keys_are_derived_from_the_settings() -> None:
    pytest.importorskip("flask")
    from blinker_events._flask_config import BUS_ARGUMENTS, CONFIG_DEFAULTS

    assert list(BUS_ARGUMENTS.values()) == [n for n in SETTING_NAMES if n != "sync_executor"]
    for key, setting in BUS_ARGUMENTS.items():
        assert key == f"BLINKER_EVENTS_{setting.upper()}"
        if setting != "propagate_exceptions":  # None there means app.testing
            assert CONFIG_DEFAULTS[key] == default_of(setting)


def test_django_keys_are_derived_from_the_settings() -> None:
    pytest.importorskip("django")
    from blinker_events.django._settings import DEFAULTS

    for setting in SETTING_NAMES:
        expected = "thread_sensitive" if setting == "sync_executor" else default_of(setting)
        assert DEFAULTS[setting.upper()] == expected
