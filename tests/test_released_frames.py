"""Failures kept in reports and history release the receiver's frames, along
every exception they carry: ``__cause__``, ``__context__`` and the members of
exception groups. The traceback of each survives as text in a note."""

from __future__ import annotations

import asyncio
import gc
import traceback
import weakref
from collections.abc import Callable

import pytest

from blinker_events import Event, EventBus

from .conftest import Demo


class _Held:
    """Something a receiver holds in a local while it fails."""


def _raise_from(held: list[weakref.ref[_Held]]) -> None:
    local = _Held()
    held.append(weakref.ref(local))
    try:
        raise KeyError("inner")
    except KeyError as exc:
        raise ValueError("outer") from exc


def _raise_during(held: list[weakref.ref[_Held]]) -> None:
    try:
        local = _Held()
        held.append(weakref.ref(local))
        raise KeyError("first")
    except KeyError:
        raise ValueError("while handling") from None


def _inner(held: list[weakref.ref[_Held]]) -> None:
    local = _Held()
    held.append(weakref.ref(local))
    raise LookupError("member")


def _raise_group(held: list[weakref.ref[_Held]]) -> None:
    errors: list[Exception] = []
    for _ in range(2):
        try:
            _inner(held)
        except LookupError as exc:
            errors.append(exc)
    raise ExceptionGroup("several", errors)


def _raise_implicit(held: list[weakref.ref[_Held]]) -> None:
    try:
        _inner(held)
    except LookupError:
        raise ValueError("implicitly chained")  # noqa: B904 - the implicit __context__ is the point


RAISERS: dict[str, Callable[[list[weakref.ref[_Held]]], None]] = {
    "cause": _raise_from,
    "context-suppressed": _raise_during,
    "context": _raise_implicit,
    "group": _raise_group,
}


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
    return found


@pytest.mark.parametrize("how", list(RAISERS))
@pytest.mark.parametrize("path", ["publish_sync", "publish", "publish_nowait"])
def test_failures_in_the_history_release_every_chained_exceptions_frames(bus: EventBus, how: str, path: str) -> None:
    held: list[weakref.ref[_Held]] = []
    raiser = RAISERS[how]

    if path == "publish":

        async def receiver(event: Event) -> None:
            raiser(held)

        bus.subscribe(Demo.PING, receiver)
        asyncio.run(bus.publish(Event(Demo.PING)))
    else:
        bus.subscribe(Demo.PING, lambda event: raiser(held))
        if path == "publish_sync":
            bus.publish_sync(Event(Demo.PING))
        else:
            bus.publish_nowait(Event(Demo.PING)).result(timeout=5)

    gc.collect()
    assert held
    assert [ref() for ref in held] == [None] * len(held)
    [report] = bus.get_delivery_reports(Demo.PING)
    [(_, error)] = report.failed
    chained = _chain(error)
    assert len(chained) >= 2
    for exc in chained:
        assert exc.__traceback__ is None
    # The text survives: every exception that had a traceback got its note.
    for exc in chained:
        [note] = exc.__notes__
        assert note.startswith("Traceback (its frames were released by blinker_events):")
    assert f"in {raiser.__name__}" in "".join(traceback.format_exception(error))


def test_a_propagated_failure_keeps_its_frames_for_debugging() -> None:
    bus = EventBus(propagate_exceptions=True)
    try:
        held: list[weakref.ref[_Held]] = []
        bus.subscribe(Demo.PING, lambda event: _raise_from(held))
        with pytest.raises(ValueError, match="outer") as info:
            bus.publish_sync(Event(Demo.PING))
        assert info.value.__traceback__ is not None
        assert info.value.__cause__ is not None
        assert info.value.__cause__.__traceback__ is not None
    finally:
        bus.shutdown(timeout=5)
