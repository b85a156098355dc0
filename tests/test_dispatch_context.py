"""A dispatch context that raises cannot hang a publish or lose its report.

``set_dispatch_context(factory)`` wraps every delivery on the bus's own
threads. When making, entering or leaving that context raises, the failure
is reported like a receiver's: logged, in the report (``context_errors``, a
``DispatchContextError`` caused by what the context raised), raised under
propagation -- and the publish returns. Receivers a context that could not be
entered kept from running are reported as skipped (``"context"``); none of it
counts toward a receiver's auto-disable.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from blinker_events import DeliveryReport, DispatchContextError, Event, EventBus

from .conftest import Demo


class Broken(Exception):
    pass


def _factory(where: str) -> Callable[[], contextlib.AbstractContextManager[Any]]:
    """A dispatch context that raises ``Broken`` in one place: ``make``
    (the factory itself), ``enter`` or ``exit``."""

    @contextlib.contextmanager
    def context() -> Iterator[None]:
        if where == "enter":
            raise Broken("enter")
        yield
        if where == "exit":
            raise Broken("exit")

    def factory() -> contextlib.AbstractContextManager[Any]:
        if where == "make":
            raise Broken("make")
        return context()

    return factory


async def _async_receiver(event: Event) -> None:
    await asyncio.sleep(0)


def _check(report: DeliveryReport, bus: EventBus, where: str, ran: list[str]) -> None:
    subs = list(bus.get_subscriptions())
    [error] = report.context_errors
    assert isinstance(error, DispatchContextError)
    assert isinstance(error.__cause__, Broken)
    assert str(error.__cause__) == where
    assert report.errors()[-1] is error
    assert not report.ok
    assert list(report.failed) == []
    if where == "exit":
        assert ran
        assert len(report.succeeded) == len(subs)
        assert list(report.skipped) == []
    else:
        assert ran == []
        assert report.succeeded == []
        assert sorted((s.id, reason) for s, reason, _ in report.skipped) == sorted((s.id, "context") for s in subs)
    assert [s.failures for s in subs] == [0] * len(subs)
    assert bus.get_delivery_reports()[-1] is report


WHERE = ["make", "enter", "exit"]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("executor", ["worker", "thread_sensitive"])
def test_await_publish_returns_when_the_dispatch_context_raises(bus: EventBus, where: str, executor: str) -> None:
    ran: list[str] = []
    bus.set_sync_executor(executor)
    bus.set_dispatch_context(_factory(where))
    bus.subscribe(Demo.PING, lambda event: ran.append("sync"))
    started = time.monotonic()
    report = asyncio.run(asyncio.wait_for(bus.publish(Event(Demo.PING)), 10))
    assert time.monotonic() - started < 5
    _check(report, bus, where, ran)


@pytest.mark.parametrize("where", WHERE)
def test_publish_sync_returns_its_report_when_the_dispatch_context_raises(bus: EventBus, where: str) -> None:
    ran: list[str] = []

    async def receiver(event: Event) -> None:
        ran.append("async")

    bus.set_dispatch_context(_factory(where))
    bus.subscribe(Demo.PING, receiver)  # runs on the bus loop, in the dispatch context
    report = bus.publish_sync(Event(Demo.PING))
    _check(report, bus, where, ran)


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("receivers", ["sync", "async", "both"])
def test_publish_nowait_resolves_to_its_report_when_the_dispatch_context_raises(
    bus: EventBus, where: str, receivers: str
) -> None:
    ran: list[str] = []

    async def receiver(event: Event) -> None:
        ran.append("async")

    bus.set_dispatch_context(_factory(where))
    if receivers in ("sync", "both"):
        bus.subscribe(Demo.PING, lambda event: ran.append("sync"))
    if receivers in ("async", "both"):
        bus.subscribe(Demo.PING, receiver)
    report = bus.publish_nowait(Event(Demo.PING)).result(timeout=5)
    if receivers == "sync":
        _check(report, bus, where, ran)
        return
    # Entered twice: around the worker's run, and afresh around the async
    # receivers on the bus loop -- so a context that always fails fails twice.
    assert [str(e.__cause__) for e in report.context_errors] == [where, where]
    subs = list(bus.get_subscriptions())
    assert [s.failures for s in subs] == [0] * len(subs)
    if where == "exit":
        assert sorted(ran) == sorted(["async", "sync"] if receivers == "both" else ["async"])
        assert len(report.succeeded) == len(ran)
    else:
        assert ran == []
        assert sorted((s.id, reason) for s, reason, _ in report.skipped) == sorted((s.id, "context") for s in subs)


def test_publish_nowait_enters_the_context_afresh_for_its_async_receivers(bus: EventBus) -> None:
    """The worker's entry failing skips the sync receivers it was for; the
    async ones get an entry of their own on the bus loop, which may succeed."""
    ran: list[str] = []
    calls: list[int] = []

    @contextlib.contextmanager
    def context() -> Iterator[None]:
        yield

    def fails_once() -> contextlib.AbstractContextManager[Any]:
        calls.append(1)
        if len(calls) == 1:
            raise Broken("make")
        return context()

    async def receiver(event: Event) -> None:
        ran.append("async")

    bus.set_dispatch_context(fails_once)
    sync_sub = bus.subscribe(Demo.PING, lambda event: ran.append("sync"))
    async_sub = bus.subscribe(Demo.PING, receiver)
    report = bus.publish_nowait(Event(Demo.PING)).result(timeout=5)
    assert len(calls) == 2
    assert ran == ["async"]
    assert report.succeeded == [async_sub]
    assert [(s, reason) for s, reason, _ in report.skipped] == [(sync_sub, "context")]
    assert [str(e.__cause__) for e in report.context_errors] == ["make"]


@pytest.mark.parametrize("path", ["publish_sync", "publish", "publish_nowait"])
def test_a_failing_dispatch_context_is_raised_under_propagation(path: str) -> None:
    bus = EventBus(propagate_exceptions=True)
    try:
        bus.set_dispatch_context(_factory("enter"))
        bus.subscribe(Demo.PING, _async_receiver if path == "publish_sync" else lambda event: None)
        publishes: dict[str, Callable[[], object]] = {
            "publish_sync": lambda: bus.publish_sync(Event(Demo.PING)),
            "publish": lambda: asyncio.run(asyncio.wait_for(bus.publish(Event(Demo.PING)), 10)),
            "publish_nowait": lambda: bus.publish_nowait(Event(Demo.PING)).result(timeout=5),
        }
        with pytest.raises(DispatchContextError) as info:
            publishes[path]()
        assert isinstance(info.value.__cause__, Broken)
    finally:
        bus.shutdown(timeout=5)


def test_failing_dispatch_contexts_never_disable_a_receiver(bus: EventBus) -> None:
    bus.set_dispatch_context(_factory("enter"))
    sub = bus.subscribe(Demo.PING, lambda event: None)
    for _ in range(bus.failure_threshold + 1):
        bus.publish_nowait(Event(Demo.PING)).result(timeout=5)
    assert (sub.failures, sub.disabled) == (0, False)


def test_flask_async_view_returns_when_teardown_appcontext_raises() -> None:
    pytest.importorskip("flask")
    from flask import Flask, g

    from blinker_events.flask import BlinkerEvents, current_events, get_bus

    app = Flask("teardown")
    ext = BlinkerEvents()
    ext.init_app(app)
    try:
        ran: list[str] = []

        @app.teardown_appcontext
        def close_session(exc: BaseException | None) -> None:
            if g.get("session"):  # opened by the receiver, on the bus's thread
                raise Broken("session already closed")

        def receiver(event: Event) -> None:
            g.session = True
            ran.append(threading.current_thread().name)

        get_bus(app).subscribe(Demo.PING, receiver)

        @app.post("/")
        async def view() -> dict[str, Any]:
            report = await current_events.publish(Event(Demo.PING))
            return {"ok": len(report.succeeded), "context_errors": [str(e.__cause__) for e in report.context_errors]}

        result: list[Any] = []
        client = threading.Thread(target=lambda: result.append(app.test_client().post("/")), daemon=True)
        client.start()
        client.join(10)
        assert not client.is_alive(), "the async view never returned"
        [response] = result
        assert response.status_code == 200
        assert response.json == {"ok": 1, "context_errors": ["session already closed"]}
        assert len(ran) == 1
    finally:
        ext.shutdown_app(app, timeout=5)
