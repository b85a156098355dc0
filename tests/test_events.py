"""The event model: event types (the guide's EventType snippet, other enums,
strings, signal identity) and the immutable Event (ids, timestamps, parent
links, JSON round trips)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum, auto
from types import MappingProxyType
from typing import Any

import pytest
from blinker import NamedSignal
from hypothesis import given, settings
from hypothesis import strategies as st

from blinker_events import Event, EventBus, EventType, SystemEventType

from .conftest import Demo


# The guide's snippet, exactly as written (with ``from enum import auto``).
class MyEventTypes(EventType):
    MY_CUSTOM_EVENT = auto()


class Color(Enum):
    """A plain Enum (not an EventType) used as event type."""

    RED = 1
    BLUE = 2


BUILT_INS = ("SYSTEM_STARTUP", "SYSTEM_SHUTDOWN", "SYSTEM_ERROR", "SUBSCRIBER_DISABLED")


def _make_plain_enum() -> type[Enum]:
    class Local(Enum):
        X = 1

    return Local


def _make_event_type() -> type[EventType]:
    class LocalTypes(EventType):
        X = auto()

    return LocalTypes


# -- EventType -----------------------------------------------------------------


def test_guide_snippet_subclass_works_and_publishes(bus: EventBus) -> None:
    """The guide's ``class MyEventTypes(EventType): MY_CUSTOM_EVENT = auto()`` defines a usable member."""
    member = MyEventTypes.MY_CUSTOM_EVENT
    assert isinstance(member, EventType)
    assert list(MyEventTypes) == [member]
    assert member.name == "MY_CUSTOM_EVENT"
    seen: list[Event] = []
    bus.subscribe(member, seen.append)
    event = Event(member, {"custom_data": "value"}, "my_component")
    report = bus.publish_sync(event)
    assert seen == [event]
    assert [s.callback for s in report.succeeded] == [seen.append]
    assert bus.get_history() == [event]


@pytest.mark.parametrize("name", BUILT_INS)
def test_built_in_types_reachable_on_base_and_subclasses(name: str, bus: EventBus) -> None:
    member = getattr(EventType, name)
    assert isinstance(member, Enum)
    assert isinstance(member, EventType)
    assert member.name == name
    assert getattr(MyEventTypes, name) is member
    assert getattr(Demo, name) is member
    seen: list[Event] = []
    bus.subscribe(member, seen.append)
    event = Event(member, {"version": "1.0.0"}, "my_component")
    bus.publish_sync(event)
    assert seen == [event]


def test_built_in_types_are_distinct() -> None:
    members = [getattr(EventType, name) for name in BUILT_INS]
    assert len({id(m) for m in members}) == len(BUILT_INS)
    assert len({m.value for m in members}) == len(BUILT_INS)


def test_subclass_member_is_usable_like_a_built_in(bus: EventBus) -> None:
    """Subclass members and built-ins go through the same subscribe/publish/history/count calls."""
    seen: list[str] = []
    bus.subscribe(MyEventTypes.MY_CUSTOM_EVENT, lambda e: seen.append("custom"))
    bus.subscribe(EventType.SYSTEM_STARTUP, lambda e: seen.append("startup"))
    assert bus.get_subscriber_count(MyEventTypes.MY_CUSTOM_EVENT) == 1
    assert bus.get_subscriber_count(MyEventTypes.SYSTEM_STARTUP) == 1
    bus.publish_sync(Event(MyEventTypes.SYSTEM_STARTUP))
    bus.publish_sync(Event(MyEventTypes.MY_CUSTOM_EVENT))
    assert seen == ["startup", "custom"]
    assert [e.event_type for e in bus.get_history(MyEventTypes.MY_CUSTOM_EVENT)] == [MyEventTypes.MY_CUSTOM_EVENT]


def test_plain_enum_and_string_event_types_are_delivered(bus: EventBus) -> None:
    seen: list[tuple[str, Event]] = []
    bus.subscribe(Color.RED, lambda e: seen.append(("red", e)))
    bus.subscribe(Color.BLUE, lambda e: seen.append(("blue", e)))
    bus.subscribe("order.created", lambda e: seen.append(("str", e)))
    red, created, blue = Event(Color.RED), Event("order.created", {"id": 7}), Event(Color.BLUE)
    bus.publish_sync(red)
    bus.publish_sync(created)
    bus.publish_sync(blue)
    assert seen == [("red", red), ("str", created), ("blue", blue)]


def test_equal_strings_are_the_same_event_type(bus: EventBus) -> None:
    """A string event type is identified by value, not by object identity."""
    seen: list[Event] = []
    name = "".join(["user", ".", "login"])  # a different str object with the same value
    bus.subscribe("user.login", seen.append)
    event = Event(name)
    bus.publish_sync(event)
    assert seen == [event]
    assert bus.signal_for(name) is bus.signal_for("user.login")


def test_signal_for_returns_a_named_signal_per_type(bus: EventBus) -> None:
    signal = bus.signal_for(Demo.PING)
    assert isinstance(signal, NamedSignal)
    assert signal is bus.signal_for(Demo.PING)
    assert signal is not bus.signal_for(Demo.PONG)
    assert signal.name == "Demo.PING"
    assert bus.signal_for("plain").name == "plain"


def test_two_local_enums_with_same_qualname_never_share_a_signal(bus: EventBus) -> None:
    first, second = _make_plain_enum(), _make_plain_enum()
    assert first.__qualname__ == second.__qualname__
    assert first.__module__ == second.__module__
    a, b = first["X"], second["X"]
    assert bus.signal_for(a) is not bus.signal_for(b)
    got_a: list[Event] = []
    got_b: list[Event] = []
    bus.subscribe(a, got_a.append)
    bus.subscribe(b, got_b.append)
    ev_a = Event(a)
    bus.publish_sync(ev_a)
    assert got_a == [ev_a]
    assert got_b == []
    ev_b = Event(b)
    bus.publish_sync(ev_b)
    assert got_a == [ev_a]
    assert got_b == [ev_b]
    assert bus.get_subscriber_count(a) == 1
    assert bus.get_subscriber_count(b) == 1
    assert bus.get_history(a) == [ev_a]


def test_two_local_event_type_subclasses_with_same_qualname_never_share_a_signal(bus: EventBus) -> None:
    first, second = _make_event_type(), _make_event_type()
    a, b = first["X"], second["X"]
    assert bus.signal_for(a) is not bus.signal_for(b)
    got: list[str] = []
    bus.subscribe(a, lambda e: got.append("a"))
    bus.subscribe(b, lambda e: got.append("b"))
    bus.publish_sync(Event(b))
    bus.publish_sync(Event(a))
    assert got == ["b", "a"]


def test_str_enum_member_and_equal_string_are_distinct_types(bus: EventBus) -> None:
    class Kind(StrEnum):
        LOGIN = "login"

    assert Kind.LOGIN == "login"  # they compare equal...
    assert bus.signal_for(Kind.LOGIN) is not bus.signal_for("login")  # ...but are different event types
    seen: list[str] = []
    bus.subscribe(Kind.LOGIN, lambda e: seen.append("enum"))
    bus.subscribe("login", lambda e: seen.append("str"))
    bus.publish_sync(Event("login"))
    assert seen == ["str"]
    bus.publish_sync(Event(Kind.LOGIN))
    assert seen == ["str", "enum"]
    assert bus.get_subscriber_count("login") == 1
    assert bus.get_subscriber_count(Kind.LOGIN) == 1
    assert [e.event_type for e in bus.get_history("login")] == ["login"]


# -- Event construction and immutability --------------------------------------


def test_positional_construction_as_in_the_guide() -> None:
    event = Event(EventType.SYSTEM_STARTUP, {"version": "1.0.0"}, "my_component")
    assert event.event_type is EventType.SYSTEM_STARTUP
    assert dict(event.data) == {"version": "1.0.0"}
    assert event.source == "my_component"
    assert event.parent_id is None


def test_defaults_data_is_empty_mapping_and_source_none() -> None:
    event = Event(Demo.PING)
    assert isinstance(event.data, Mapping)
    assert dict(event.data) == {}
    assert event.source is None
    assert dict(Event(Demo.PING, None).data) == {}


@pytest.mark.parametrize("field", ["event_type", "data", "source", "event_id", "timestamp", "parent_id"])
def test_assigning_any_field_raises_attribute_error(field: str) -> None:
    event = Event(Demo.PING, {"a": 1}, "src")
    before = getattr(event, field)
    with pytest.raises(AttributeError):
        setattr(event, field, "changed")
    with pytest.raises(AttributeError):
        delattr(event, field)
    assert getattr(event, field) == before


def test_new_attributes_cannot_be_added() -> None:
    event = Event(Demo.PING)
    with pytest.raises(AttributeError):
        event.extra = 1  # type: ignore[attr-defined]


def test_data_is_read_only_and_copied_from_the_input() -> None:
    payload: dict[str, Any] = {"a": 1}
    event = Event(Demo.PING, payload)
    with pytest.raises(TypeError):
        event.data["b"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        del event.data["a"]  # type: ignore[attr-defined]
    payload["a"] = 99
    payload["b"] = 2
    del payload["a"]
    assert dict(event.data) == {"a": 1}


@pytest.mark.parametrize("payload", [None, {"a": 1}, MappingProxyType({"a": 1})])
def test_data_is_one_read_only_view_however_often_it_is_read(payload: Mapping[str, Any] | None) -> None:
    # The view is made on first read (see Event._view): still one object,
    # read-only, and for an event read back by from_dict as well.
    for event in (Event(Demo.PING, payload), Event.from_dict(Event(Demo.PING, payload).to_dict())):
        view = event.data
        assert event.data is view
        assert dict(view) == dict(payload or {})
        with pytest.raises(TypeError):
            view["b"] = 2  # type: ignore[index]


@pytest.mark.parametrize("bad", [[("a", 1)], "text", 42, {1, 2}, b"bytes"])
def test_data_that_is_not_a_mapping_raises_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=r"\bdata\b"):
        Event(Demo.PING, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [42, 1.5, None, object(), b"ping", Demo])
def test_event_type_that_is_not_enum_str_or_signal_raises_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=r"\bevent_type\b"):
        Event(bad)  # type: ignore[arg-type]


# -- ids and timestamps --------------------------------------------------------


def test_event_ids_are_unique_and_prefix_counter_shaped() -> None:
    events = [Event(Demo.PING) for _ in range(20000)]
    ids = [e.event_id for e in events]
    assert len(set(ids)) == len(ids)
    parts = [i.rpartition("-") for i in ids]
    prefixes = {prefix for prefix, _, _ in parts}
    assert len(prefixes) == 1
    (prefix,) = prefixes
    assert prefix != ""
    assert all(sep == "-" and counter.isdigit() for _, sep, counter in parts)
    counters = [int(counter) for _, _, counter in parts]
    assert counters == sorted(counters)
    assert counters[-1] - counters[0] >= len(counters) - 1


def test_event_ids_unique_across_threads() -> None:
    ids: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def make(out: list[str]) -> None:
        start.wait()
        out.extend(Event(Demo.PING).event_id for _ in range(3000))

    threads = [threading.Thread(target=make, args=(out,)) for out in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for out in ids for i in out]
    assert len(flat) == 8 * 3000
    assert len(set(flat)) == len(flat)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_event_id_prefix_differs_in_a_forked_child() -> None:
    parent_ids = [Event(Demo.PING).event_id for _ in range(5)]
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # 3.12+ warns that forking a multi-threaded process may deadlock; the
        # child only makes one Event and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(read_fd)
            os.write(write_fd, Event(Demo.PING).event_id.encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        chunks = []
        while chunk := os.read(read_fd, 1024):
            chunks.append(chunk)
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child_id = b"".join(chunks).decode()
    child_prefix, _, child_counter = child_id.rpartition("-")
    parent_prefix = parent_ids[0].rpartition("-")[0]
    assert child_counter.isdigit()
    assert child_prefix != parent_prefix
    assert child_id not in parent_ids
    # The parent's own id space is untouched by the fork.
    assert Event(Demo.PING).event_id.rpartition("-")[0] == parent_prefix


def test_timestamp_is_aware_utc_and_current() -> None:
    before = datetime.now(UTC)
    event = Event(Demo.PING)
    after = datetime.now(UTC)
    ts = event.timestamp
    assert ts.tzinfo is not None
    assert ts.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= ts <= after + timedelta(seconds=1)
    assert event.timestamp == ts  # stable across reads


# -- parent_id -----------------------------------------------------------------


def test_parent_id_is_none_at_top_level() -> None:
    assert Event(Demo.PING).parent_id is None


def test_parent_id_links_event_made_in_receiver_publish_sync(bus: EventBus) -> None:
    inner: list[Event] = []
    bus.subscribe(Demo.PING, lambda e: inner.append(Event(Demo.PONG)))
    outer = Event(Demo.PING)
    bus.publish_sync(outer)
    assert [e.parent_id for e in inner] == [outer.event_id]
    assert Event(Demo.PING).parent_id is None  # the context is reset after the publish


def test_parent_id_links_through_a_published_child(bus: EventBus) -> None:
    """A -> B -> C: each event's parent_id is the event whose receiver made it."""
    made: list[Event] = []

    def on_ping(e: Event) -> None:
        child = Event(Demo.PONG)
        made.append(child)
        bus.publish_sync(child)

    def on_pong(e: Event) -> None:
        made.append(Event(Demo.OTHER))

    bus.subscribe(Demo.PING, on_ping)
    bus.subscribe(Demo.PONG, on_pong)
    root = Event(Demo.PING)
    bus.publish_sync(root)
    assert [e.parent_id for e in made] == [root.event_id, made[0].event_id]


def test_parent_id_for_async_receiver_under_publish_sync(bus: EventBus) -> None:
    inner: list[Event] = []

    async def on_ping(e: Event) -> None:
        await asyncio.sleep(0)
        inner.append(Event(Demo.PONG))

    bus.subscribe(Demo.PING, on_ping)
    outer = Event(Demo.PING)
    bus.publish_sync(outer)
    assert [e.parent_id for e in inner] == [outer.event_id]


def receivers_making_events(bus: EventBus) -> dict[str, Event]:
    """A sync and an async receiver of PING that each make a PONG event;
    returns where they put them (keys "sync" and "async")."""
    made: dict[str, Event] = {}

    def sync_receiver(e: Event) -> None:
        made["sync"] = Event(Demo.PONG)

    async def async_receiver(e: Event) -> None:
        await asyncio.sleep(0)
        made["async"] = Event(Demo.PONG)

    bus.subscribe(Demo.PING, sync_receiver)
    bus.subscribe(Demo.PING, async_receiver)
    return made


@pytest.mark.asyncio
async def test_parent_id_links_event_made_in_receiver_await_publish(bus: EventBus) -> None:
    made = receivers_making_events(bus)
    outer = Event(Demo.PING)
    await bus.publish(outer)
    assert {k: v.parent_id for k, v in made.items()} == {"sync": outer.event_id, "async": outer.event_id}
    assert Event(Demo.PING).parent_id is None


def test_parent_id_links_event_made_in_receiver_publish_nowait(bus: EventBus) -> None:
    made = receivers_making_events(bus)
    outer = Event(Demo.PING)
    report = bus.publish_nowait(outer).result(timeout=10)
    assert len(report.succeeded) == 2
    assert {k: v.parent_id for k, v in made.items()} == {"sync": outer.event_id, "async": outer.event_id}


# -- to_dict / from_dict -------------------------------------------------------


def _round_trip(event: Event) -> Event:
    return Event.from_dict(json.loads(json.dumps(event.to_dict())))


def _assert_same_event(back: Event, event: Event) -> None:
    if isinstance(event.event_type, str):
        assert type(back.event_type) is str
        assert back.event_type == event.event_type
    else:
        assert back.event_type is event.event_type
    assert dict(back.data) == dict(event.data)
    assert back.source == event.source
    assert back.event_id == event.event_id
    assert back.timestamp == event.timestamp
    assert back.parent_id == event.parent_id


@pytest.mark.parametrize(
    "event_type",
    [Demo.PING, MyEventTypes.MY_CUSTOM_EVENT, EventType.SYSTEM_STARTUP, EventType.SUBSCRIBER_DISABLED],
    ids=["Demo.PING", "MyEventTypes", "SYSTEM_STARTUP", "SUBSCRIBER_DISABLED"],
)
def test_round_trip_event_type_subclass_members(event_type: EventType) -> None:
    event = Event(event_type, {"n": 1, "nested": {"l": [1, 2.5, "x", None, True]}}, "my_component")
    _assert_same_event(_round_trip(event), event)


def test_round_trip_string_type() -> None:
    event = Event("order.created", {"id": 3}, {"service": "shop"})
    back = _round_trip(event)
    _assert_same_event(back, event)
    assert back.event_type == "order.created"


def test_round_trip_other_enum_seen_by_a_bus(bus: EventBus) -> None:
    class Local(Enum):
        A = "a"

    bus.subscribe(Local.A, lambda e: None)
    event = Event(Local.A, {"k": "v"}, "src")
    back = _round_trip(event)
    _assert_same_event(back, event)
    seen: list[Event] = []
    bus.subscribe(Local.A, seen.append)
    bus.publish_sync(back)  # the rebuilt event reaches the type's subscribers
    assert seen == [back]


def test_round_trip_keeps_parent_id(bus: EventBus) -> None:
    inner: list[Event] = []
    bus.subscribe(Demo.PING, lambda e: inner.append(Event(Demo.PONG, {"x": 1})))
    outer = Event(Demo.PING)
    bus.publish_sync(outer)
    back = _round_trip(inner[0])
    _assert_same_event(back, inner[0])
    assert back.parent_id == outer.event_id


def test_round_trip_of_empty_data_and_tuples() -> None:
    event = Event(Demo.PING)
    assert dict(_round_trip(event).data) == {}
    back = _round_trip(Event(Demo.PING, {"t": (1, 2)}))
    assert dict(back.data) == {"t": [1, 2]}


def test_unseen_plain_enum_cannot_be_read_back() -> None:
    """A payload naming a plain Enum this process never saw (as one from
    another process would) is refused; nothing is imported by name."""

    class NeverSeen(Enum):
        A = 1

    payload = {
        "version": 1,
        "event_type": {"kind": "enum", "enum": f"{__name__}:{NeverSeen.__qualname__}", "member": "A"},
        "event_id": "abc-1",
        "parent_id": None,
        "timestamp": 1.0,
        "source": None,
        "data": {},
    }
    with pytest.raises(ValueError, match="unknown enum"):
        Event.from_dict(payload)


def test_a_plain_enum_written_by_to_dict_reads_back_in_this_process() -> None:
    class WrittenOut(Enum):
        A = 1

    event = Event(WrittenOut.A, {"n": 1})
    restored = Event.from_dict(json.loads(json.dumps(event.to_dict())))
    assert restored.event_type is WrittenOut.A
    assert restored.event_id == event.event_id


def test_ambiguous_event_type_subclasses_raise_value_error() -> None:
    first, second = _make_event_type(), _make_event_type()
    payload = json.loads(json.dumps(Event(second["X"]).to_dict()))
    with pytest.raises(ValueError, match="event_type"):
        Event.from_dict(payload)
    assert first is not second


def test_same_qualname_plain_enums_never_resolve_to_the_other_type(bus: EventBus) -> None:
    """A payload of the second enum must round-trip to it or be rejected -- never become the first one."""
    first, second = _make_plain_enum(), _make_plain_enum()
    bus.subscribe(first["X"], lambda e: None)
    bus.subscribe(second["X"], lambda e: None)
    payload = json.loads(json.dumps(Event(second["X"]).to_dict()))
    try:
        back = Event.from_dict(payload)
    except ValueError:
        return
    assert back.event_type is second["X"]


def test_round_trip_named_signal_seen_by_bus(bus: EventBus) -> None:
    signal = NamedSignal("tests.test_events.named")
    seen: list[Event] = []
    bus.subscribe(signal, seen.append)
    event = Event(signal, {"a": 1})
    back = _round_trip(event)
    _assert_same_event(back, event)
    bus.publish_sync(back)
    assert seen == [back]


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"a": object()}, "data.a"),
        ({"a": {"b": [1, 2, {1, 2}]}}, "data.a.b[2]"),
        ({"when": datetime(2024, 1, 1, tzinfo=UTC)}, "data.when"),
        ({"x": math.nan}, "data.x"),
        ({"x": math.inf}, "data.x"),
        ({"x": {1: "int key"}}, "data.x"),
        ({"b": b"bytes"}, "data.b"),
    ],
)
def test_to_dict_rejects_non_json_data_naming_the_path(data: dict[str, Any], path: str) -> None:
    event = Event(Demo.PING, data)
    with pytest.raises(ValueError) as info:
        event.to_dict()
    assert str(info.value).startswith(f"{path}:")


def test_to_dict_rejects_non_json_source() -> None:
    with pytest.raises(ValueError) as info:
        Event(Demo.PING, None, object()).to_dict()
    assert str(info.value).startswith("source:")


def test_to_dict_default_hook_converts_values() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = Event(Demo.PING, {"when": when, "items": [when]}, "src")
    converted = event.to_dict(default=lambda o: o.isoformat())
    assert converted["data"] == {"when": when.isoformat(), "items": [when.isoformat()]}
    back = Event.from_dict(json.loads(json.dumps(converted)))
    assert dict(back.data) == {"when": "2024-01-02T03:04:05+00:00", "items": ["2024-01-02T03:04:05+00:00"]}
    assert back.event_id == event.event_id


def _valid_payload() -> dict[str, Any]:
    return json.loads(json.dumps(Event(Demo.PING, {"a": 1}, "src").to_dict()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "version"),
        ({"version": 0}, "version"),
        ({"version": "1"}, "version"),
        ({"version": None}, "version"),
        ({"event_type": {"kind": "enum", "enum": "no.such.module:Nope", "member": "X"}}, "unknown enum"),
        ({"event_type": {"kind": "enum", "enum": "tests.conftest:Demo", "member": "NOPE"}}, "no member"),
        ({"event_type": {"kind": "signal", "name": "no-such-signal-anywhere"}}, "unknown signal"),
        ({"event_type": {"kind": "martian"}}, "event_type"),
        ({"event_type": {"kind": "str", "name": 5}}, "event_type"),
        ({"event_type": "Demo.PING"}, "event_type"),
        ({"event_type": None}, "event_type"),
        ({"event_id": 17}, "event_id"),
        ({"event_id": "nodash"}, "event_id"),
        ({"event_id": "abc-notanumber"}, "event_id"),
        ({"event_id": None}, "event_id"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": math.nan}, "timestamp"),
        ({"timestamp": True}, "timestamp"),
        ({"timestamp": None}, "timestamp"),
        ({"parent_id": 12}, "parent_id"),
        ({"data": [1, 2]}, "data"),
        ({"data": "text"}, "data"),
    ],
)
def test_from_dict_rejects_bad_payloads(change: dict[str, Any], message: str) -> None:
    payload = _valid_payload()
    payload.update(change)
    with pytest.raises(ValueError, match=message):
        Event.from_dict(payload)


@pytest.mark.parametrize("key", ["version", "event_type", "event_id", "timestamp"])
def test_from_dict_rejects_missing_required_fields(key: str) -> None:
    payload = _valid_payload()
    del payload[key]
    with pytest.raises(ValueError, match=key):
        Event.from_dict(payload)


@pytest.mark.parametrize("bad", ["{}", 42, None, [("version", 1)]])
def test_from_dict_rejects_non_mapping_payload_with_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="payload"):
        Event.from_dict(bad)  # type: ignore[arg-type]


def test_from_dict_with_valid_payload_rebuilds_exactly() -> None:
    payload = _valid_payload()
    back = Event.from_dict(payload)
    assert back.event_type is Demo.PING
    assert dict(back.data) == {"a": 1}
    assert back.source == "src"
    assert back.event_id == payload["event_id"]
    assert back.timestamp == datetime.fromtimestamp(payload["timestamp"], UTC)
    assert back.parent_id is None


def test_to_dict_of_cyclic_data_names_the_path_of_the_cycle() -> None:
    looped: dict[str, object] = {"name": "a"}
    looped["self"] = looped
    listed: list[object] = [1]
    listed.append({"back": listed})
    with pytest.raises(ValueError, match=r"data\.looped\.self: .*cycle"):
        Event(Demo.PING, {"looped": looped}).to_dict()
    with pytest.raises(ValueError, match=r"source\[1\]\.back: .*cycle"):
        Event(Demo.PING, source=listed).to_dict()


def test_to_dict_takes_the_same_object_twice_when_it_is_no_cycle() -> None:
    shared = {"n": 1}
    data = Event(Demo.PING, {"a": shared, "b": [shared, shared]}).to_dict()["data"]
    assert data == {"a": {"n": 1}, "b": [{"n": 1}, {"n": 1}]}


def test_to_dict_of_a_list_holding_itself_twice_is_refused_as_a_cycle_at_once() -> None:
    """Walked without a check of the containers on the way, each level
    doubles the work: 2**200 steps before the nesting limit would stop it."""
    twice: list[object] = []
    twice.extend([twice, twice])
    with pytest.raises(ValueError, match=r"^data\.twice\[0\]: a cycle"):
        Event(Demo.PING, {"twice": twice}).to_dict()


def _as_json_reads_it(value: Any) -> Any:
    """What to_dict must give for data it accepts: the value as the json
    module writes and reads it back (tuples become lists), any mapping
    taken as a dict."""

    def dicts(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {key: dicts(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return [dicts(inner) for inner in item]
        return item

    return json.loads(json.dumps(dicts(value), allow_nan=False))


class _Text(str):
    pass


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.builds(_Text, st.text(max_size=3)),
)
_trees = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=4),
        st.dictionaries(st.text(max_size=4), inner, max_size=3).map(MappingProxyType),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_trees)
def test_to_dict_of_any_data_gives_what_json_reads_back_or_names_what_it_refuses(value: Any) -> None:
    try:
        expected = _as_json_reads_it({"v": value})
    except (TypeError, ValueError):  # a non-str key after all, or nan/inf
        with pytest.raises(ValueError, match=r"^data\.v"):
            Event(Demo.PING, {"v": value}).to_dict()
        return
    if _has_non_str_key(value):  # json.dumps turns an int key into a string; to_dict refuses it
        with pytest.raises(ValueError, match="is not a string"):
            Event(Demo.PING, {"v": value}).to_dict()
        return
    data = Event(Demo.PING, {"v": value}).to_dict()["data"]
    assert data == expected
    assert json.dumps(data) == json.dumps(expected)  # the same types too: lists, not tuples


def _has_non_str_key(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(not isinstance(k, str) or _has_non_str_key(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_non_str_key(v) for v in value)
    return False


def test_to_dict_of_data_nested_too_deeply_is_a_value_error() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError, match=r"data\.deep.*nested"):
        Event(Demo.PING, {"deep": deep}).to_dict()


@pytest.mark.parametrize("converted", [object(), math.inf, "cyclic"], ids=["object", "inf", "cyclic"])
def test_to_dict_default_hook_giving_no_json_is_a_value_error_naming_the_path(converted: Any) -> None:
    if converted == "cyclic":
        converted = []
        converted.append(converted)
    event = Event(Demo.PING, {"when": [datetime(2024, 1, 2, tzinfo=UTC)]})
    with pytest.raises(ValueError, match=r"^data\.when\[0\]: default"):
        event.to_dict(default=lambda o: converted)


def test_from_dict_keeps_an_event_id_whole() -> None:
    """Used to: ``from_dict`` split the id and rebuilt it from an int, so
    "abc-007" came back as "abc-7"."""
    payload = Event(Demo.PING, {"k": 1}, "src").to_dict()
    payload["event_id"] = "abc-007"
    event = Event.from_dict(payload)
    assert event.event_id == "abc-007"
    assert Event.from_dict(event.to_dict()).event_id == "abc-007"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "abc-\u0663"),  # ARABIC-INDIC DIGIT THREE: str.isdigit() is True
        ("event_id", "abc-\u00b2"),  # SUPERSCRIPT TWO: isdigit() True, int() fails
        ("timestamp", 10**400),  # an int no float can hold
        ("timestamp", 1e300),  # finite, but no datetime can hold it
    ],
    ids=["arabic-indic-digit", "superscript-digit", "huge-int-timestamp", "huge-float-timestamp"],
)
def test_from_dict_rejects_ids_and_timestamps_it_cannot_hold(field: str, value: Any) -> None:
    """Used to: non-ASCII digits passed ``isdigit()`` (then crashed or were
    accepted), and timestamps no datetime can hold were accepted, failing
    later on ``event.timestamp``."""
    payload = Event(Demo.PING).to_dict()
    payload[field] = value
    with pytest.raises(ValueError, match=field):
        Event.from_dict(payload)


# failure mode 1 (failure-modes-to-rule-out.md): EventType subclass with auto()
def test_eventtype_subclass_with_auto_defines_members(bus: EventBus) -> None:
    """`class MyEventTypes(EventType): X = auto()` raises `TypeError: cannot extend
    enumeration` when `EventType` is a plain `Enum` with members. The guide shows
    exactly this snippet."""

    class Local(EventType):
        X = auto()
        Y = auto()

    assert [m.name for m in Local] == ["X", "Y"]
    seen: list[Event] = []
    sub = bus.subscribe(MyEventTypes.MY_CUSTOM_EVENT, seen.append)
    bus.subscribe(Local.X, seen.append)
    event = Event(MyEventTypes.MY_CUSTOM_EVENT, {"k": 1}, "me")
    report = bus.publish_sync(event)
    bus.publish_sync(Event(Local.X))
    assert report.succeeded == [sub]
    assert [e.event_type for e in seen] == [MyEventTypes.MY_CUSTOM_EVENT, Local.X]
    assert bus.get_history(MyEventTypes.MY_CUSTOM_EVENT) == [event]
    assert bus.signal_for(MyEventTypes.MY_CUSTOM_EVENT) is not bus.signal_for(Local.X)
    # the built-ins stay reachable, and new members serialise like built-ins
    assert EventType.SYSTEM_STARTUP is SystemEventType.SYSTEM_STARTUP
    back = Event.from_dict(json.loads(json.dumps(event.to_dict())))
    assert back.event_type is MyEventTypes.MY_CUSTOM_EVENT
    assert back.event_id == event.event_id


# -- reading events back: what to_dict refuses, from_dict refuses too -------------


def _payload(**changes: object) -> dict[str, object]:
    payload = Event("round-trip", {"n": 1}).to_dict()
    payload.update(changes)
    return payload


def _cyclic() -> dict[str, object]:
    data: dict[str, object] = {}
    data["self"] = data
    return data


def _nested(depth: int) -> dict[str, object]:
    data: dict[str, object] = {}
    for _ in range(depth):
        data = {"d": data}
    return data


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("data", _cyclic(), "payload.data.self: a cycle"),
        ("data", _nested(300), "nested deeper than 200 levels"),
        ("data", {"o": object()}, "payload.data.o: object is not JSON-safe"),
        ("data", {1: "x"}, "payload.data: key 1 is not a string"),
        ("source", {"o": object()}, "payload.source.o: object is not JSON-safe"),
    ],
)
def test_from_dict_refuses_what_to_dict_would_refuse_naming_the_path(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Event.from_dict(_payload(**{field: value}))


def test_from_dict_error_messages_are_bounded_whatever_the_payload_holds() -> None:
    huge = "x" * 1_000_000
    payload = _payload(event_type={"kind": "enum", "enum": huge, "member": huge})
    with pytest.raises(ValueError, match="unknown enum") as caught:
        Event.from_dict(payload)
    assert len(str(caught.value)) < 1_000


def test_to_dict_of_an_int_too_long_for_json_is_a_value_error_naming_the_path() -> None:
    event = Event("big", {"outer": {"count": 10**5000}})
    with pytest.raises(ValueError, match=r"^data\.outer\.count: an int of more than \d+ digits has no JSON form$"):
        event.to_dict()
    assert Event("big", {"n": 10**4000}).to_dict()["data"] == {"n": 10**4000}


def test_to_dict_error_paths_are_bounded_when_keys_are_huge() -> None:
    with pytest.raises(ValueError, match="is not JSON-safe") as caught:
        Event("k", {"k" * 1_000_000: object()}).to_dict()
    assert len(str(caught.value)) < 1_000
