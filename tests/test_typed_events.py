"""Typed events: ``TypedEvent`` classes as event types -- their fields and
checks, delivery by class (and to receivers of a base class), history,
``to_dict``/``from_dict``, the Redis bridge, and what ``mypy --strict``
says about their receivers."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import pytest

from blinker_events import CircularEventError, Event, EventBus, TypedEvent, event_type_name
from tests.conftest import WAIT, BusFactory, Demo, wait_until


class OrderEvent(TypedEvent):
    order_id: int


class OrderPlaced(OrderEvent):
    items: tuple[str, ...] = ()
    note: str | None = None


class OrderShipped(OrderEvent):
    carrier: Literal["ups", "dhl"]


class Refunded(TypedEvent):
    amount: float
    reasons: Mapping[str, int] = MappingProxyType({})


class Hostile:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


# -- the class and its instances -------------------------------------------------


def test_a_typed_event_is_an_event_with_read_only_fields() -> None:
    event = OrderPlaced(order_id=42, items=["a", "b"], source="shop")
    assert isinstance(event, Event)
    assert event.event_type is OrderPlaced
    assert (event.order_id, event.items, event.note, event.source) == (42, ("a", "b"), None, "shop")
    assert dict(event.data) == {"order_id": 42, "items": ("a", "b"), "note": None}
    assert event.parent_id is None
    assert event.event_id.count("-") == 1
    assert event.timestamp.tzinfo is not None
    with pytest.raises(AttributeError):
        event.order_id = 7  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.other = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        event.data["order_id"] = 7  # type: ignore[index]
    assert event.order_id == 42
    assert event_type_name(OrderPlaced) == "OrderPlaced"


def test_the_constructor_takes_the_fields_as_keywords_with_their_defaults() -> None:
    assert str(inspect.signature(OrderPlaced)) == "(*, source=None, order_id, items=(), note=None)"
    assert OrderPlaced(order_id=1).items == ()
    with pytest.raises(TypeError, match=r"^OrderPlaced\(\) takes its fields as keyword arguments only$"):
        OrderPlaced(1)  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"^OrderPlaced.order_id: missing, and the field has no default$"):
        OrderPlaced()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"^OrderPlaced has no field 'colour'$"):
        OrderPlaced(order_id=1, colour="red")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: OrderPlaced(order_id="42"), TypeError, "OrderPlaced.order_id: expected int, got str"),
        (lambda: OrderPlaced(order_id=True), TypeError, "OrderPlaced.order_id: expected int, got bool"),
        (lambda: OrderPlaced(order_id=1, items=("a", 2)), TypeError, "OrderPlaced.items[1]: expected str, got int"),
        (lambda: OrderPlaced(order_id=1, note=3), TypeError, "OrderPlaced.note: expected str | None, got int"),
        (
            lambda: OrderShipped(order_id=1, carrier="fedex"),
            TypeError,
            "OrderShipped.carrier: expected one of ['ups', 'dhl'], got 'fedex'",
        ),
        (lambda: Refunded(amount=float("nan")), ValueError, "Refunded.amount: nan has no JSON form"),
        (lambda: Refunded(amount=1.0, reasons={"x": "y"}), TypeError, "Refunded.reasons.x: expected int, got str"),
        (lambda: Refunded(amount=1.0, reasons={1: 1}), TypeError, "Refunded.reasons: key 1 is not a str"),
        (lambda: OrderPlaced(order_id=10**5000), ValueError, "OrderPlaced.order_id: an int of more than"),
    ],
)
def test_a_value_that_does_not_fit_its_field_is_refused_naming_the_field(
    make: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        make()
    assert str(caught.value).startswith(message)


def test_containers_are_kept_immutable_and_apart_from_what_was_passed() -> None:
    items = ["a"]
    reasons = {"late": 1}
    placed = OrderPlaced(order_id=1, items=items)
    refunded = Refunded(amount=2, reasons=reasons)
    items.append("b")
    reasons["late"] = 2
    assert placed.items == ("a",)
    assert isinstance(refunded.reasons, MappingProxyType)
    assert dict(refunded.reasons) == {"late": 1}
    assert refunded.amount == 2.0
    assert type(refunded.amount) is float


class Flexible(TypedEvent):
    anything: Any
    tags: Sequence[str] = ()
    pair: tuple[int, str] = (0, "")
    empty: tuple[()] = ()
    limit: ClassVar[int] = 3  # a ClassVar is not a field


def test_any_fields_are_checked_json_safe_and_kept_as_their_json_copy_made_immutable() -> None:
    event = Flexible(anything={"a": (1, 2)}, tags=["x"], pair=[1, "y"])
    assert event.anything == MappingProxyType({"a": (1, 2)})
    assert (event.tags, event.pair, event.empty) == (("x",), (1, "y"), ())
    assert "limit" not in event.data
    with pytest.raises(ValueError, match=r"^Flexible.anything: set is not JSON-safe"):
        Flexible(anything={1, 2})
    with pytest.raises(TypeError, match=r"^Flexible.pair: expected 2 items, got 3$"):
        Flexible(anything=None, pair=(1, "a", 2))


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ("list[int]", "X.field: list[int] is mutable or not JSON; declare tuple[X, ...] or Sequence[X]"),
        ("dict[str, int]", "X.field: dict[str, int] is mutable or not JSON; declare Mapping[str, X]"),
        ("set[str]", "X.field: set[str] is mutable or not JSON; declare tuple[X, ...] or Sequence[X]"),
        ("bytes", "X.field: bytes is not a JSON-safe field type; use str, int, float, bool, None, a Literal"),
        ("datetime", "X.field: datetime is not a JSON-safe field type"),
        ("Literal[1.5]", "X.field: Literal[1.5] is not a JSON scalar"),
        ("Mapping[int, str]", "X.field: a Mapping field's keys must be str (JSON object keys)"),
        ('"Undefined"', "X: cannot read its annotations: NameError"),
    ],
)
def test_a_field_type_that_cannot_be_json_safe_is_refused_when_the_class_is_defined(
    annotation: str, message: str
) -> None:
    namespace: dict[str, Any] = {"TypedEvent": TypedEvent}
    imports = "from datetime import datetime\nfrom typing import Literal, Mapping\n"
    source = f"{imports}class X(TypedEvent):\n    field: {annotation}\n"
    with pytest.raises(TypeError) as caught:
        exec(compile(source, "<definitions>", "exec", dont_inherit=True), namespace)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("name", ["source", "data", "event_id", "timestamp", "to_dict", "collect", "_private"])
def test_a_field_named_as_an_event_attribute_is_refused(name: str) -> None:
    with pytest.raises(TypeError, match=rf"^X.{name}: a field must not start with '_' nor be named as an Event"):
        type("X", (TypedEvent,), {"__annotations__": {name: int}})


def test_defaults_are_checked_and_a_bare_inherited_default_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^X.n \(default\): expected int, got str$"):
        type("X", (TypedEvent,), {"__annotations__": {"n": int}, "n": "1"})
    with pytest.raises(TypeError, match=r"^X.note: a new default of an inherited field needs its annotation$"):
        type("X", (OrderPlaced,), {"note": "hi"})
    redeclared = type("Y", (OrderPlaced,), {"__annotations__": {"note": "str | None"}, "note": "hi"})
    assert redeclared(order_id=1).note == "hi"


def test_event_of_a_typed_class_made_as_a_plain_event_is_refused() -> None:
    with pytest.raises(
        TypeError, match=r"^event_type: publish OrderPlaced\(\.\.\.\) itself, not Event\(\.\.\.\) of it"
    ):
        Event(OrderPlaced, {"order_id": 1})


def test_repr_names_the_fields_and_survives_hostile_and_huge_values() -> None:
    event = OrderPlaced(order_id=1, note="x" * 100_000, source=Hostile())
    text = repr(event)
    assert text.startswith("OrderPlaced(order_id=1, items=(), note='xxx")
    assert len(text) <= 300
    plain = repr(OrderPlaced(order_id=1, source="s"))
    assert plain.startswith("OrderPlaced(order_id=1, items=(), note=None, source='s', id=")


def test_hostile_and_huge_values_are_refused_or_kept_without_their_repr() -> None:
    with pytest.raises(ValueError, match=r"^Flexible.anything: Hostile is not JSON-safe"):
        Flexible(anything=Hostile())
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match=r"^Flexible.anything\[0\]: a cycle"):
        Flexible(anything=looped)
    with pytest.raises(TypeError, match=r"^Flexible.tags\[0\]: expected str, got list$"):
        Flexible(anything=None, tags=looped)
    big = OrderPlaced(order_id=1, items=tuple(str(n) for n in range(100_000)))
    assert len(big.items) == 100_000
    assert len(repr(big)) <= 300


def test_bridging_a_blinker_signal_to_a_typed_class_is_refused_and_changes_nothing(bus: EventBus) -> None:
    from blinker import Signal

    signal = Signal()
    with pytest.raises(TypeError, match=r"^event_type: a TypedEvent class cannot be relayed to"):
        bus.bridge(signal, OrderPlaced)
    assert not signal.receivers
    assert bus.unbridge(signal) is False


# -- delivery ---------------------------------------------------------------------


def test_published_instances_reach_the_receivers_of_their_class_on_all_three_paths(bus: EventBus) -> None:
    got: list[tuple[str, Event]] = []
    bus.subscribe(OrderPlaced, lambda e: got.append(("sync", e)))

    async def on_placed(event: OrderPlaced) -> None:
        got.append(("async", event))

    bus.subscribe(OrderPlaced, on_placed)
    bus.subscribe(Refunded, lambda e: got.append(("refund", e)))
    first, second, third = (OrderPlaced(order_id=n) for n in range(3))
    assert bus.publish_sync(first).ok
    assert asyncio.run(bus.publish(second)).ok
    assert bus.publish_nowait(third).result(WAIT).ok
    # await publish runs the sync receiver on a pool thread while the async one runs: the order is free.
    assert [sorted(kind for kind, e in got if e is event) for event in (first, second, third)] == [
        ["async", "sync"]
    ] * 3
    assert len(got) == 6
    assert bus.get_history(OrderPlaced) == [first, second, third]
    assert [r.event for r in bus.get_delivery_reports(OrderPlaced)] == [first, second, third]


def test_a_receiver_of_a_base_class_receives_its_subclasses_in_subscription_order(bus: EventBus) -> None:
    got: list[tuple[str, int]] = []
    bus.subscribe(OrderPlaced, lambda e: got.append(("placed", e.order_id)))
    bus.subscribe(OrderEvent, lambda e: got.append(("order", e.order_id)))
    bus.subscribe(TypedEvent, lambda e: got.append(("typed", getattr(e, "order_id", -1))))
    bus.subscribe(None, lambda e: got.append(("all", getattr(e, "order_id", -1))))
    bus.publish_sync(OrderPlaced(order_id=1))
    bus.publish_sync(OrderShipped(order_id=2, carrier="ups"))  # nobody subscribed to OrderShipped itself
    bus.publish_sync(OrderEvent(order_id=3))
    bus.publish_sync(Refunded(amount=1.0))
    bus.publish_sync(Event(Demo.PING))
    assert got == [
        ("placed", 1), ("order", 1), ("typed", 1), ("all", 1),
        ("order", 2), ("typed", 2), ("all", 2),
        ("order", 3), ("typed", 3), ("all", 3),
        ("typed", -1), ("all", -1),
        ("all", -1),
    ]  # fmt: skip
    assert [s.event_type for s in bus.get_subscriptions(OrderPlaced)] == [OrderPlaced, OrderEvent, TypedEvent, None]
    assert bus.get_subscriber_count(OrderShipped) == 3
    assert bus.get_subscriber_count(OrderEvent) == 3  # not its subclasses' receivers


def test_routes_follow_subscriptions_to_base_classes_as_they_change(bus: EventBus) -> None:
    got: list[str] = []
    bus.subscribe(OrderPlaced, lambda e: got.append("placed"))
    bus.publish_sync(OrderPlaced(order_id=1))  # caches OrderPlaced's route
    bus.publish_sync(OrderShipped(order_id=1, carrier="dhl"))  # and OrderShipped's (empty) one

    def on_order(event: OrderEvent) -> None:
        got.append(f"order:{type(event).__name__}")

    sub = bus.subscribe(OrderEvent, on_order)
    bus.publish_sync(OrderPlaced(order_id=2))
    bus.publish_sync(OrderShipped(order_id=2, carrier="dhl"))
    assert got == ["placed", "placed", "order:OrderPlaced", "order:OrderShipped"]
    assert sub.unsubscribe()
    bus.publish_sync(OrderPlaced(order_id=3))
    bus.publish_sync(OrderShipped(order_id=3, carrier="dhl"))
    assert got == ["placed", "placed", "order:OrderPlaced", "order:OrderShipped", "placed"]
    catch_all = bus.subscribe(None, lambda e: got.append("all"))
    bus.publish_sync(OrderShipped(order_id=4, carrier="dhl"))
    catch_all.unsubscribe()
    bus.publish_sync(OrderShipped(order_id=5, carrier="dhl"))
    assert got[-1:] == ["all"]


def test_a_plain_blinker_receiver_of_a_base_classs_signal_receives_its_subclasses(bus: EventBus) -> None:
    got: list[tuple[Any, int]] = []

    def plain(sender: Any, *, event: OrderEvent) -> None:
        got.append((sender, event.order_id))

    bus.signal_for(OrderEvent).connect(plain)
    bus.publish_sync(OrderShipped(order_id=5, carrier="ups", source="warehouse"))
    assert got == [("warehouse", 5)]
    assert bus.unsubscribe(OrderEvent, plain) == 1
    bus.publish_sync(OrderShipped(order_id=6, carrier="ups"))
    assert got == [("warehouse", 5)]


def test_the_history_of_a_base_class_lists_its_subclasses_events(bus: EventBus) -> None:
    placed, shipped, refunded = OrderPlaced(order_id=1), OrderShipped(order_id=2, carrier="ups"), Refunded(amount=1)
    for event in (placed, shipped, refunded):
        bus.publish_sync(event)
    assert bus.get_history(OrderEvent) == [placed, shipped]
    assert bus.get_history(OrderShipped) == [shipped]
    assert bus.get_history(TypedEvent, limit=1) == [refunded]


def test_a_typed_event_keeps_its_parent_and_the_cycle_guard_applies(bus: EventBus) -> None:
    children: list[Event] = []

    def on_order(event: OrderEvent) -> None:
        child = OrderPlaced(order_id=event.order_id + 1)
        children.append(child)
        bus.publish_sync(child)  # a receiver of OrderEvent re-entered by its own handling

    bus.subscribe(OrderEvent, on_order)
    first = OrderPlaced(order_id=1)
    bus.publish_sync(first)
    assert [c.parent_id for c in children] == [first.event_id]
    (inner,) = bus.get_delivery_reports(OrderPlaced)[:1]
    assert inner.event is children[0]
    assert [(s.event_type, reason) for s, reason, _ in inner.skipped] == [(OrderEvent, "cycle")]
    assert isinstance(inner.skipped[0][2], CircularEventError)


def test_many_threads_publishing_while_base_subscriptions_churn_lose_nothing(new_bus: BusFactory) -> None:
    bus = new_bus()
    counts = {"kept": 0}
    lock = threading.Lock()

    def kept(event: OrderEvent) -> None:
        with lock:
            counts["kept"] += 1

    bus.subscribe(OrderEvent, kept)
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            bus.subscribe(TypedEvent, lambda e: None).unsubscribe()
            bus.subscribe(OrderPlaced, lambda e: None).unsubscribe()

    def publish() -> None:
        for n in range(300):
            bus.publish_sync(OrderPlaced(order_id=n) if n % 2 else OrderShipped(order_id=n, carrier="ups"))

    churners = [threading.Thread(target=churn) for _ in range(2)]
    publishers = [threading.Thread(target=publish) for _ in range(4)]
    for thread in churners + publishers:
        thread.start()
    for thread in publishers:
        thread.join(30)
    stop.set()
    for thread in churners:
        thread.join(30)
    assert counts["kept"] == 1200
    assert bus.get_subscriber_count(OrderPlaced) == 1


# -- to_dict / from_dict ----------------------------------------------------------


def test_to_dict_and_from_dict_round_trip_to_the_same_class() -> None:
    event = OrderPlaced(order_id=7, items=("a",), source={"node": "n1"})
    payload = event.to_dict()
    assert payload["event_type"] == {"kind": "class", "class": f"{__name__}:OrderPlaced"}
    assert payload["data"] == {"order_id": 7, "items": ["a"], "note": None}
    back = Event.from_dict(payload)
    assert type(back) is OrderPlaced
    assert (back.order_id, back.items, back.note, back.source) == (7, ("a",), None, {"node": "n1"})
    assert (back.event_id, back.timestamp, back.parent_id) == (event.event_id, event.timestamp, None)
    assert OrderPlaced.from_dict(payload).order_id == 7
    assert OrderEvent.from_dict(payload).order_id == 7  # a subclass's event is an OrderEvent
    assert back.to_dict() == payload
    refunded = Refunded.from_dict(Refunded(amount=1.5, reasons={"late": 1}).to_dict())
    assert isinstance(refunded.reasons, MappingProxyType)
    assert dict(refunded.reasons) == {"late": 1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"order_id": "7"}, "payload.data.order_id: expected int, got str"),
        ({"items": "ab"}, "payload.data.items: expected a tuple, got str"),
        ({"colour": "red"}, "payload.data: OrderPlaced has no field 'colour'"),
        ({"order_id": None}, "payload.data.order_id: expected int, got NoneType"),
    ],
)
def test_from_dict_refuses_fields_that_do_not_fit_naming_them(change: dict[str, Any], message: str) -> None:
    payload = OrderPlaced(order_id=7).to_dict()
    payload["data"].update(change)
    with pytest.raises(ValueError) as caught:
        Event.from_dict(payload)
    assert str(caught.value) == message
    del payload["data"]
    with pytest.raises(ValueError, match=r"^payload.data.order_id: missing, and the field has no default$"):
        Event.from_dict(payload)


def test_from_dict_on_a_class_refuses_another_event_type() -> None:
    with pytest.raises(ValueError, match=r"^payload: an event of Refunded, not of OrderPlaced$"):
        OrderPlaced.from_dict(Refunded(amount=1).to_dict())
    with pytest.raises(ValueError, match=r"^payload: an event of Demo.PING, not of OrderPlaced$"):
        OrderPlaced.from_dict(Event(Demo.PING).to_dict())
    assert Event.from_dict(Event(Demo.PING).to_dict()).event_type is Demo.PING


def test_from_dict_refuses_an_unknown_or_ambiguous_class() -> None:
    payload = OrderPlaced(order_id=1).to_dict()
    payload["event_type"] = {"kind": "class", "class": "nowhere:Nothing"}
    with pytest.raises(ValueError, match=r"^event_type: unknown event class 'nowhere:Nothing'$"):
        Event.from_dict(payload)

    def define() -> type[TypedEvent]:
        class Twin(TypedEvent):
            n: int

        return Twin

    gc.collect()  # no Twin of an earlier run of this test is left
    first, second = define(), define()
    payload = first(n=1).to_dict()
    with pytest.raises(ValueError, match=r"^event_type: 2 different event classes named '.*Twin'$"):
        Event.from_dict(payload)
    del second


def test_an_event_class_does_not_outlive_its_definition_in_the_registry() -> None:
    def define() -> weakref.ref[type[TypedEvent]]:
        class Gone(TypedEvent):
            n: int

        return weakref.ref(Gone)

    ref = define()
    gc.collect()
    assert ref() is None


# -- the Redis bridge -------------------------------------------------------------


def test_a_typed_event_crosses_the_redis_bridge_as_its_class(redis_server: Any) -> None:
    from blinker_events.redis import RedisBridge

    left_bus, right_bus = EventBus(), EventBus()
    # Listing a class carries its subclasses' events, as a receiver of it receives them.
    left = RedisBridge(left_bus, redis_server.url, stream="typed", event_types=[OrderEvent])
    right = RedisBridge(right_bus, redis_server.url, stream="typed")
    got: list[TypedEvent] = []
    right_bus.subscribe(TypedEvent, got.append)
    try:
        assert left.start()
        assert right.start()
        left_bus.publish_sync(Refunded(amount=1.0))  # not listed: stays here
        sent = OrderPlaced(order_id=42, items=("a", "b"), source="shop")
        left_bus.publish_sync(sent)
        assert wait_until(lambda: len(got) == 1, 15)  # entries arrive in order: nothing came before it
        (arrived,) = got
        assert type(arrived) is OrderPlaced
        assert dict(arrived.data) == dict(sent.data)
        assert (arrived.event_id, arrived.source, arrived.origin) == (sent.event_id, "shop", left.node_id)
        assert right_bus.get_history(OrderPlaced) == [arrived]
    finally:
        assert left.stop(timeout=10) == 0
        assert right.stop(timeout=10) == 0
        left_bus.shutdown(timeout=10)
        right_bus.shutdown(timeout=10)


# -- what mypy --strict says ----------------------------------------------------------

PROGRAM = """\
from blinker_events import Event, EventBus, TypedEvent


class OrderPlaced(TypedEvent):
    order_id: int


class Refunded(TypedEvent):
    amount: float


bus = EventBus()


def on_placed(event: OrderPlaced) -> None:
    print(event.order_id + 1)


def on_any_event(event: Event) -> None:
    print(event.event_id)


async def on_placed_async(event: OrderPlaced) -> int:
    return event.order_id


def on_refunded(event: Refunded) -> None:
    print(event.amount)


bus.subscribe(OrderPlaced, on_placed)
bus.subscribe(OrderPlaced, on_any_event, timeout=1.0)
bus.subscribe(OrderPlaced, on_placed_async)
bus.subscribe("legacy", lambda event: None)
bus.publish_sync(OrderPlaced(order_id=1, source="shop"))


@bus.subscribe(OrderPlaced)
def decorated(event: OrderPlaced) -> None:
    print(event.order_id)


bus.subscribe(OrderPlaced, on_refunded)  # line 43: the wrong class


@bus.subscribe(OrderPlaced)  # line 46: the wrong class, decorated
def decorated_wrong(event: Refunded) -> None:
    print(event.amount)


OrderPlaced(order_id="1")  # line 51: a field of the wrong type
"""


def test_mypy_strict_accepts_receivers_of_the_class_and_rejects_one_of_another(tmp_path: Path) -> None:
    mypy_api = pytest.importorskip("mypy.api")
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    assert PROGRAM.splitlines()[42].startswith("bus.subscribe(OrderPlaced, on_refunded)")
    stdout, stderr, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), str(program)]
    )
    lines = [line.replace(str(program), "program.py") for line in stdout.splitlines()]
    assert lines == [
        'program.py:43: error: Argument 2 to "subscribe" of "EventBus" has incompatible type '
        '"Callable[[Refunded], None]"; expected "Callable[[OrderPlaced], Any]"  [arg-type]',
        'program.py:46: error: Argument 1 has incompatible type "Callable[[Refunded], None]"; '
        'expected "Callable[[OrderPlaced], None]"  [arg-type]',
        'program.py:51: error: Argument "order_id" to "OrderPlaced" has incompatible type "str"; '
        'expected "int"  [arg-type]',
    ], stderr
    assert status == 1


class _Ordered(TypedEvent):
    order_id: int


class _Audited(TypedEvent):
    actor: str = "system"


class _Cancelled(_Ordered, _Audited):
    reason: str


def test_a_class_with_two_typed_event_bases_has_the_fields_of_both_in_dataclass_order() -> None:
    event = _Cancelled(order_id=1, actor="alice", reason="changed mind")
    assert (event.order_id, event.actor, event.reason) == (1, "alice", "changed mind")
    assert dict(event.data) == {"actor": "alice", "order_id": 1, "reason": "changed mind"}
    assert list(inspect.signature(_Cancelled).parameters) == ["source", "actor", "order_id", "reason"]
    assert _Cancelled(order_id=2, reason="r").actor == "system"


def test_a_receiver_of_the_second_base_gets_its_fields_on_a_subclass_event(bus: EventBus) -> None:
    actors: list[str] = []
    bus.subscribe(_Audited, lambda event: actors.append(event.actor))
    bus.publish_sync(_Cancelled(order_id=1, actor="bob", reason="r"))
    assert actors == ["bob"]


class _Loose(TypedEvent):
    payload: Any
    meta: Mapping[str, Any]


def test_values_of_any_fields_are_frozen_so_no_receiver_changes_what_the_next_one_sees(bus: EventBus) -> None:
    seen: list[object] = []

    def meddles(event: _Loose) -> None:
        event.payload["tags"].append("x")  # type: ignore[index]

    bus.subscribe(_Loose, meddles)
    bus.subscribe(_Loose, lambda event: seen.append(event.payload))
    report = bus.publish_sync(_Loose(payload={"tags": ["a"]}, meta={"labels": [1, {"k": "v"}]}))
    assert [type(error) for _, error in report.failed] == [AttributeError]  # a tuple has no append
    assert seen == [MappingProxyType({"tags": ("a",)})]
    event = report.event
    assert isinstance(event, _Loose)
    assert event.meta["labels"] == (1, MappingProxyType({"k": "v"}))
    assert event.to_dict()["data"] == {"payload": {"tags": ["a"]}, "meta": {"labels": [1, {"k": "v"}]}}
    assert _Loose.from_dict(event.to_dict()).payload == MappingProxyType({"tags": ("a",)})
