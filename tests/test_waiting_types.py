"""``mypy --strict`` on code that waits and streams: what it gives is an
``Event`` (and a wrong use of it is refused)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

GOOD = """
from blinker_events import Event, EventBus, EventStream, Waiter

async def consume(bus: EventBus) -> list[str]:
    async with bus.expect("order.placed", lambda e: e.data["id"] == 1, timeout=5) as waiter:
        first: Event = await waiter
    same: Event | None = waiter.event
    with bus.expect("x") as thread_waiter:
        other: Event = thread_waiter.wait()
    stream: EventStream[Event] = bus.stream("order.placed", maxsize=10)
    ids = [first.event_id, other.event_id, (await bus.wait_for(None)).event_id]
    async for event in stream:
        ids.append(event.event_id)
    ids.extend(event.event_id for event in stream)
    waiters: list[Waiter[Event]] = [waiter]
    return ids if same is not None and waiters else []
"""

BAD = """
from blinker_events import EventBus

async def consume(bus: EventBus) -> None:
    count: int = await bus.wait_for("x")
    async for event in bus.stream("x"):
        event.missing_attribute
"""


def check(tmp_path: Path, source: str) -> tuple[str, int]:
    path = tmp_path / "snippet.py"
    path.write_text(textwrap.dedent(source))
    out, err, status = api.run(["--strict", "--cache-dir", str(tmp_path / "cache"), str(path)])
    return out + err, status


def test_waiting_and_streaming_type_check_under_strict_mypy(tmp_path: Path) -> None:
    out, status = check(tmp_path, GOOD)
    assert status == 0, out


def test_wrong_uses_of_what_they_give_are_refused(tmp_path: Path) -> None:
    out, status = check(tmp_path, BAD)
    assert status == 1
    assert 'Incompatible types in assignment (expression has type "Event", variable has type "int")' in out
    assert '"Event" has no attribute "missing_attribute"' in out


TYPED = """
import blinker_events
from blinker_events import EventBus, EventStream, TypedEvent, Waiter

class OrderPlaced(TypedEvent):
    order_id: int

async def consume(bus: EventBus) -> list[int]:
    ids = [bus.get_history(OrderPlaced)[0].order_id, blinker_events.get_history(OrderPlaced)[0].order_id]
    ids.append((await bus.wait_for(OrderPlaced, lambda e: e.order_id > 1)).order_id)
    waiter: Waiter[OrderPlaced] = bus.expect(OrderPlaced)
    async with waiter:
        ids.append((await waiter).order_id)
    stream: EventStream[OrderPlaced] = bus.stream(OrderPlaced)
    async for event in stream:
        ids.append(event.order_id)
    return ids

async def wrong(bus: EventBus) -> str:
    return (await bus.wait_for(OrderPlaced)).order_id
"""


def test_a_typed_event_class_gives_its_own_instances_to_the_type_checker(tmp_path: Path) -> None:
    out, status = check(tmp_path, TYPED)
    assert status == 1
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out
    assert 'Incompatible return value type (got "int", expected "str")' in errors[0]
