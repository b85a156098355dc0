"""Settings and timeout arguments at their limits (issue 11, item 14): a
ValueError/TypeError naming the argument, nothing changed, and every value
the checks accept works wherever it is used later."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from blinker_events import Event, EventBus

from .conftest import Demo

HUGE = [10**400, 2**63, 2**1024]
HUGE_IDS = ["10**400", "2**63", "2**1024"]
#: The longest timeout the checks accept (see blinker_events._checks).
LONGEST = threading.TIMEOUT_MAX / 2


class _SneakyStr(str):
    """Judged by its value; its __str__ and __eq__ lie."""

    def __str__(self) -> str:
        return "drop_oldest"

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = str.__hash__


class _SneakyInt(int):
    def __lt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return False


def _settings(bus: EventBus) -> dict[str, Any]:
    return {
        name: getattr(bus, name)
        for name in (
            "timeout",
            "propagate_exceptions",
            "failure_threshold",
            "history_size",
            "max_depth",
            "queue_size",
            "overflow",
            "sync_executor",
        )
    }


@pytest.mark.parametrize("value", HUGE, ids=HUGE_IDS)
@pytest.mark.parametrize("name", ["timeout", "failure_threshold", "history_size", "max_depth", "queue_size"])
def test_constructor_refuses_numbers_too_large_naming_the_argument(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        EventBus(**{name: value})


@pytest.mark.parametrize("value", HUGE, ids=HUGE_IDS)
def test_timeout_arguments_refuse_numbers_too_large(bus: EventBus, value: int) -> None:
    bus.publish_sync(Event(Demo.PING))
    with pytest.raises(ValueError, match=r"\bseconds\b"):
        bus.set_timeout(value)
    with pytest.raises(ValueError, match=r"\btimeout\b"):
        bus.subscribe(Demo.PING, print, timeout=value)
    with pytest.raises(ValueError, match=r"\btimeout\b"):
        bus.publish_sync(Event(Demo.PING), timeout=value)
    with pytest.raises(ValueError, match=r"\btimeout\b"):
        bus.publish_nowait(Event(Demo.PING), timeout=value)
    with pytest.raises(ValueError, match=r"\btimeout\b"):
        bus.shutdown(timeout=value)
    assert bus.timeout is None
    assert bus.get_subscriptions() == []
    assert len(bus.get_history()) == 1


@pytest.mark.parametrize("value", HUGE, ids=HUGE_IDS)
@pytest.mark.parametrize("setter", ["set_failure_threshold", "set_history_size", "set_max_depth", "set_queue_size"])
def test_setters_refuse_numbers_too_large_and_change_nothing(bus: EventBus, setter: str, value: int) -> None:
    event = Event(Demo.PING)
    bus.publish_sync(event)
    before = _settings(bus)
    with pytest.raises(ValueError, match=r"\bn\b"):
        getattr(bus, setter)(value)
    assert _settings(bus) == before
    assert bus.get_history() == [event]


def test_get_history_takes_any_limit_up_to_the_largest_size(bus: EventBus) -> None:
    event = Event(Demo.PING)
    bus.publish_sync(event)
    assert bus.get_history(limit=sys.maxsize) == [event]
    assert bus.get_delivery_reports(limit=sys.maxsize)[0].event is event
    with pytest.raises(ValueError, match=r"\blimit\b"):
        bus.get_history(limit=10**400)
    with pytest.raises(TypeError, match=r"\blimit\b"):
        bus.get_history(limit=1e400)


def test_largest_accepted_timeout_works_on_every_path() -> None:
    bus = EventBus(queue_size=1)
    try:
        largest = LONGEST
        bus.set_timeout(largest)
        release = threading.Event()
        bus.subscribe(Demo.PING, lambda event: release.wait(10))
        first = bus.publish_nowait(Event(Demo.PING), timeout=largest)
        second = bus.publish_nowait(Event(Demo.PING), timeout=largest)
        # The queue is now full: a third publish blocks for room, up to the timeout.
        result: list[Any] = []
        blocked = threading.Thread(target=lambda: result.append(bus.publish_nowait(Event(Demo.PING), timeout=1e9)))
        blocked.start()
        release.set()
        blocked.join(10)
        assert not blocked.is_alive()
        assert len(first.result(10).succeeded) == 1
        assert len(second.result(10).succeeded) == 1
        assert len(result[0].result(10).succeeded) == 1
        assert bus.shutdown(timeout=largest) == 0
    finally:
        bus.shutdown(timeout=10)


@pytest.mark.parametrize("value", [1e10, threading.TIMEOUT_MAX])
def test_timeouts_longer_than_a_thread_can_wait_are_refused_by_name(bus: EventBus, value: float) -> None:
    # Refused when given, never an OverflowError from deep inside later.
    with pytest.raises(ValueError, match=r"\btimeout\b"):
        bus.shutdown(timeout=value)
    with pytest.raises(ValueError, match=r"\btimeout\b"):
        bus.publish_nowait(Event(Demo.PING), timeout=value)
    with pytest.raises(ValueError, match=r"\btimeout\b"):
        EventBus(timeout=value)
    assert bus.shutdown(timeout=LONGEST) == 0


def test_str_subclass_setting_is_judged_by_its_value(bus: EventBus) -> None:
    with pytest.raises(ValueError, match=r"^policy must be one of"):  # set_overflow's argument
        bus.set_overflow(_SneakyStr("nonsense"))
    # The subclass's __eq__ says yes to anything: compare as plain strs.
    assert type(bus.overflow) is str
    assert str.__eq__(bus.overflow, "block")
    bus.set_overflow(_SneakyStr("raise"))
    assert type(bus.overflow) is str
    assert str.__eq__(bus.overflow, "raise")
    assert type(bus.overflow) is str
    with pytest.raises(ValueError, match=r"\bsync_executor\b"):
        EventBus(sync_executor=_SneakyStr("nonsense"))
    named = EventBus(name=_SneakyStr("orders"))
    assert type(named.name) is str
    assert named.name == "orders"


def test_int_subclass_setting_is_judged_by_its_value(bus: EventBus) -> None:
    with pytest.raises(ValueError, match=r"\bn\b"):
        bus.set_max_depth(_SneakyInt(0))
    bus.set_max_depth(_SneakyInt(5))
    assert bus.max_depth == 5
    assert type(bus.max_depth) is int


def test_configure_changes_nothing_when_a_huge_value_is_refused(bus: EventBus) -> None:
    before = _settings(bus)
    with pytest.raises(ValueError, match=r"\bhistory_size\b"):
        bus.configure(timeout=2.0, failure_threshold=7, history_size=2**63)
    with pytest.raises(ValueError, match=r"\bqueue_size\b"):
        bus.configure(overflow="raise", queue_size=10**400)
    assert _settings(bus) == before


def test_set_history_size_of_the_largest_accepted_value_keeps_the_history(bus: EventBus) -> None:
    event = Event(Demo.PING)
    bus.publish_sync(event)
    bus.set_history_size(sys.maxsize)
    assert bus.history_size == sys.maxsize
    assert bus.get_history() == [event]
    with pytest.raises(ValueError, match=r"\bn\b"):
        bus.set_history_size(sys.maxsize + 1)
    assert bus.history_size == sys.maxsize


def test_largest_accepted_timeout_works_for_every_kind_of_receiver_and_publish() -> None:
    import asyncio

    bus = EventBus(timeout=LONGEST, sync_executor="thread_sensitive")
    try:
        seen: list[str] = []

        async def async_receiver(event: Event) -> None:
            seen.append("async")

        bus.subscribe(Demo.PING, lambda event: seen.append("sync"), timeout=LONGEST)
        bus.subscribe(Demo.PING, async_receiver, timeout=LONGEST)
        report = bus.publish_sync(Event(Demo.PING), timeout=LONGEST)
        assert len(report.succeeded) == 2
        report = asyncio.run(bus.publish(Event(Demo.PING), timeout=LONGEST))
        assert len(report.succeeded) == 2
        assert len(bus.publish_nowait(Event(Demo.PING), timeout=LONGEST).result(10).succeeded) == 2
        assert sorted(seen) == ["async"] * 3 + ["sync"] * 3
    finally:
        assert bus.shutdown(timeout=LONGEST) == 0


@pytest.mark.parametrize("value", [-(10**5000), 10**5000], ids=["-10**5000", "10**5000"])
def test_integers_too_long_to_print_are_still_refused_by_name(bus: EventBus, value: int) -> None:
    with pytest.raises(ValueError, match=r"^n must be .* integer of \d+ bits"):
        bus.set_queue_size(value)
    with pytest.raises(ValueError, match=r"^seconds must be .* integer of \d+ bits"):
        bus.set_timeout(value)
    assert bus.queue_size == 10000
    assert bus.timeout is None


@pytest.mark.parametrize("name", ["nope", 42])
def test_an_unknown_setting_name_is_a_value_error_naming_the_settings(name: object) -> None:
    from blinker_events.lowlevel import check_setting, default_of

    with pytest.raises(ValueError, match=r"^setting must be one of timeout, "):
        check_setting(name, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^setting must be one of timeout, "):
        default_of(name)  # type: ignore[arg-type]


#: A value each setting refuses.
_REFUSED = {
    "timeout": -1,
    "propagate_exceptions": "yes",
    "failure_threshold": 0,
    "history_size": -1,
    "max_depth": 0,
    "queue_size": 0,
    "overflow": "sometimes",
    "sync_executor": "elsewhere",
    "slow_after": -1,
}


def test_every_setting_is_covered_by_the_label_check() -> None:
    from blinker_events.lowlevel import SETTING_NAMES

    assert sorted(_REFUSED) == sorted(SETTING_NAMES)


@pytest.mark.parametrize("setting", sorted(_REFUSED))
def test_check_setting_names_the_label_it_is_given_for_every_setting(setting: str) -> None:
    from blinker_events.lowlevel import check_setting

    with pytest.raises((TypeError, ValueError), match=r"^MY_KEY must be "):
        check_setting(setting, _REFUSED[setting], "MY_KEY")
    with pytest.raises((TypeError, ValueError), match=rf"^{setting} must be "):
        check_setting(setting, _REFUSED[setting])
