"""The Flask extension: per-app buses from app factories, config keys, views
publishing sync and async, Flask's signals bridged, the app context on the
bus's threads, shutdown at exit, and the example app (test client and a real
WSGI server)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import flask
import pytest
from flask import Flask, current_app, g, request
from werkzeug.serving import make_server

import blinker_events
from blinker_events import DeliveryReport, Event, EventBus, QueueFullError
from blinker_events.flask import (
    CONFIG_DEFAULTS,
    FLASK_SIGNALS,
    AppState,
    BlinkerEvents,
    current_events,
    flask_event_type,
    get_bus,
)
from examples.flask_app import create_app

from .conftest import Demo

ROOT = Path(__file__).resolve().parent.parent
MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app() -> Iterator[MakeApp]:
    """Builds apps the app-factory way; afterwards unbridges them and shuts their buses down."""
    made: list[tuple[BlinkerEvents, Flask]] = []

    def make(config: dict[str, Any] | None = None, *, name: str = "app", ext: BlinkerEvents | None = None) -> Flask:
        app = Flask(name)
        # A bus of the app's own unless the test asks for the default bus:
        # these tests subscribe and configure, which must not outlive them.
        app.config.update({"BLINKER_EVENTS_OWN_BUS": True, **(config or {})})
        ext = ext or BlinkerEvents()
        ext.init_app(app)
        made.append((ext, app))
        return app

    yield make
    for ext, app in made:
        assert ext.shutdown_app(app, timeout=10) == 0


@pytest.fixture
def example_app() -> Iterator[Flask]:
    """The example app with a short timeout, so its slow receiver costs 0.1 s."""
    app = create_app({"TESTING": True, "BLINKER_EVENTS_TIMEOUT": 0.1})
    yield app
    assert app.extensions["blinker_events"].extension.shutdown_app(app, timeout=10) == 0


def table(html: str, table_id: str) -> list[list[str]]:
    """The cells of each data row of the example page's table ``table_id``."""
    body = html.split(f'<table id="{table_id}">', 1)[1].split("</table>", 1)[0]
    rows = [
        re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.DOTALL)
    ]
    return [row for row in rows if row]


def state_of(app: Flask) -> AppState:
    state = app.extensions["blinker_events"]
    assert isinstance(state, AppState)
    return state


# -- app factory, several apps ----------------------------------------------


def test_with_own_bus_each_app_gets_a_bus_named_after_it_and_the_extension_keeps_no_app(make_app: MakeApp) -> None:
    ext = BlinkerEvents()
    one = make_app(name="one", ext=ext)
    two = make_app(name="two", ext=ext)
    assert get_bus(one) is not get_bus(two)
    assert blinker_events.default_bus not in (get_bus(one), get_bus(two))
    assert (get_bus(one).name, get_bus(two).name) == ("one", "two")
    assert state_of(one).owns_bus is True
    assert state_of(one).extension is ext
    assert not hasattr(ext, "app")
    assert all(not isinstance(v, Flask) for v in vars(ext).values())


def test_constructor_with_an_app_initialises_it_on_the_default_bus() -> None:
    app = Flask("direct")
    ext = BlinkerEvents(app)
    try:
        assert get_bus(app) is blinker_events.default_bus
        assert state_of(app).owns_bus is False
        with app.app_context():
            assert current_events._get_current_object() is get_bus(app)  # type: ignore[attr-defined]
    finally:
        ext.shutdown_app(app)


def test_events_published_in_one_apps_views_reach_only_that_apps_receivers_with_own_buses(make_app: MakeApp) -> None:
    ext = BlinkerEvents()
    apps = [make_app(name=name, ext=ext) for name in ("one", "two")]
    got: dict[str, list[Any]] = {"one": [], "two": []}
    for app in apps:
        get_bus(app).subscribe(Demo.PING, lambda e, name=app.name: got[name].append(e.data["n"]))

        @app.post("/ping/<int:n>")
        def ping(n: int) -> str:
            current_events.publish_sync(Event(Demo.PING, {"n": n}))
            return current_app.name

    assert apps[0].test_client().post("/ping/1").text == "one"
    assert apps[1].test_client().post("/ping/2").text == "two"
    assert apps[0].test_client().post("/ping/3").text == "one"
    assert got == {"one": [1, 3], "two": [2]}
    assert [e.data["n"] for e in get_bus(apps[0]).get_history()] == [1, 3]
    assert [e.data["n"] for e in get_bus(apps[1]).get_history()] == [2]


# -- the default bus ----------------------------------------------------------

SHARED = ("timeout", "history_size", "failure_threshold", "propagate_exceptions", "max_depth", "queue_size", "overflow")


def default_bus_settings() -> dict[str, Any]:
    return {name: getattr(blinker_events.default_bus, name) for name in SHARED}


@pytest.fixture
def default_apps() -> Iterator[Callable[..., Flask]]:
    """Apps on the default bus; afterwards each is shut down (the last one
    gives the bus back its settings) and the default bus is as it was."""
    before = default_bus_settings()
    made: list[tuple[BlinkerEvents, Flask]] = []

    def make(name: str, config: dict[str, Any] | None = None, ext: BlinkerEvents | None = None) -> Flask:
        app = Flask(name)
        app.config.update(config or {})
        ext = ext or BlinkerEvents()
        ext.init_app(app)
        made.append((ext, app))
        return app

    yield make
    for ext, app in made:
        assert ext.shutdown_app(app) == 0
    assert default_bus_settings() == before
    assert blinker_events.default_bus.dispatch_context is None


def test_module_level_receivers_get_what_a_view_publishes_through_current_events(
    default_apps: Callable[..., Flask],
) -> None:
    """The Flask guide's first steps (docs/flask.md): ``@subscribe`` at module level, ``BlinkerEvents(app)``,
    ``current_events`` in a view."""
    seen: list[tuple[str, int, str]] = []

    @blinker_events.subscribe(Demo.PING)
    def inline(event: Event) -> None:
        seen.append(("inline", event.data["n"], request.path))

    @blinker_events.subscribe(Demo.PONG)
    def queued(event: Event) -> None:
        seen.append(("queued", event.data["n"], current_app.name))

    try:
        app = default_apps("newcomer")
        futures: list[Future[DeliveryReport]] = []

        @app.post("/orders")
        def view() -> str:
            current_events.publish_sync(Event(Demo.PING, {"n": 1}))
            futures.append(current_events.publish_nowait(Event(Demo.PONG, {"n": 2})))
            return "ok"

        assert app.test_client().post("/orders").text == "ok"
        assert len(futures[0].result(5).succeeded) == 1
        assert seen == [("inline", 1, "/orders"), ("queued", 2, "newcomer")]
        assert get_bus(app) is blinker_events.default_bus
    finally:
        blinker_events.unsubscribe(Demo.PING, inline)
        blinker_events.unsubscribe(Demo.PONG, queued)


def test_the_first_app_on_the_default_bus_configures_it_and_later_apps_must_agree(
    default_apps: Callable[..., Flask],
) -> None:
    bus = blinker_events.default_bus
    first = default_apps("first", {"TESTING": True, "BLINKER_EVENTS_TIMEOUT": 0.5, "BLINKER_EVENTS_QUEUE_SIZE": 7})
    assert (bus.timeout, bus.queue_size, bus.propagate_exceptions, bus.history_size) == (0.5, 7, True, 1000)
    same = default_apps("same", {"BLINKER_EVENTS_TIMEOUT": 0.5, "BLINKER_EVENTS_FLASK_SIGNALS": ["request_started"]})
    quiet = default_apps("quiet")  # sets nothing: takes the bus as the first app configured it
    assert get_bus(first) is get_bus(same) is get_bus(quiet) is bus
    assert state_of(same).bridged == {"request_started": "flask.request_started"}

    clash = Flask("clash")
    clash.config.update(BLINKER_EVENTS_TIMEOUT=2.0, BLINKER_EVENTS_FLASK_SIGNALS=["request_finished"])
    connected = len(flask.request_finished.receivers)
    with pytest.raises(ValueError, match=r"^BLINKER_EVENTS_TIMEOUT: app 'clash' sets 2.0.*0.5 by app 'first'.*OWN_BUS"):
        BlinkerEvents().init_app(clash)
    assert "blinker_events" not in clash.extensions
    assert len(flask.request_finished.receivers) == connected
    assert (bus.timeout, bus.queue_size, bus.propagate_exceptions) == (0.5, 7, True)
    clash.config["BLINKER_EVENTS_OWN_BUS"] = True  # the way out: a bus of its own
    ext = BlinkerEvents(clash)
    try:
        assert get_bus(clash) is not bus
        assert get_bus(clash).timeout == 2.0
    finally:
        assert ext.shutdown_app(clash) == 0


def test_the_last_app_leaving_the_default_bus_gives_it_back_its_settings(default_apps: Callable[..., Flask]) -> None:
    bus = blinker_events.default_bus
    before = default_bus_settings()
    ext = BlinkerEvents()
    one = default_apps("one", {"BLINKER_EVENTS_HISTORY_SIZE": 3}, ext)
    two = default_apps("two", {}, ext)
    ext.shutdown_app(one)
    assert bus.history_size == 3  # "two" still shares it
    ext.shutdown_app(two)
    assert default_bus_settings() == before
    # The next app configures it afresh, with its own values.
    three = default_apps("three", {"BLINKER_EVENTS_HISTORY_SIZE": 5})
    assert (get_bus(three), bus.history_size) == (bus, 5)


def test_on_the_default_bus_events_outside_any_app_get_the_first_live_apps_context(
    default_apps: Callable[..., Flask],
) -> None:
    seen: list[str] = []
    sub = blinker_events.subscribe(Demo.OTHER, lambda e: seen.append(current_app.name))
    try:
        ext = BlinkerEvents()
        one, two = default_apps("one", {}, ext), default_apps("two", {}, ext)
        blinker_events.publish_nowait(Event(Demo.OTHER)).result(5)
        with two.app_context():
            blinker_events.publish_nowait(Event(Demo.OTHER)).result(5)
        ext.shutdown_app(one)
        blinker_events.publish_nowait(Event(Demo.OTHER)).result(5)
        assert seen == ["one", "two", "two"]
    finally:
        sub.unsubscribe()


def test_an_app_cannot_both_be_given_a_bus_and_ask_for_its_own(bus: EventBus) -> None:
    app = Flask("both")
    app.config["BLINKER_EVENTS_OWN_BUS"] = True
    with pytest.raises(ValueError, match=r"^BLINKER_EVENTS_OWN_BUS"):
        BlinkerEvents(app, bus=bus)
    assert "blinker_events" not in app.extensions


# -- config --------------------------------------------------------------------


def test_defaults_when_no_key_is_set(make_app: MakeApp) -> None:
    bus = get_bus(make_app())
    assert bus.timeout is None
    assert bus.history_size == 1000
    assert bus.failure_threshold == 3
    assert bus.propagate_exceptions is False
    assert bus.max_depth == 16
    assert (bus._queue.maxsize, bus._queue.overflow) == (10000, "block")
    assert state_of(bus_app := make_app(name="other")).bridged == {}
    assert get_bus(bus_app) is not bus


def test_every_config_key_is_applied_to_the_bus(make_app: MakeApp) -> None:
    app = make_app(
        {
            "BLINKER_EVENTS_TIMEOUT": 0.25,
            "BLINKER_EVENTS_HISTORY_SIZE": 7,
            "BLINKER_EVENTS_FAILURE_THRESHOLD": 5,
            "BLINKER_EVENTS_PROPAGATE_EXCEPTIONS": True,
            "BLINKER_EVENTS_QUEUE_SIZE": 3,
            "BLINKER_EVENTS_OVERFLOW": "drop_oldest",
            "BLINKER_EVENTS_MAX_DEPTH": 4,
            "BLINKER_EVENTS_SLOW_AFTER": 0.125,
            "BLINKER_EVENTS_SHUTDOWN_TIMEOUT": 2.5,
            "BLINKER_EVENTS_FLASK_SIGNALS": ["request_started", "message_flashed"],
        }
    )
    bus = get_bus(app)
    assert bus.timeout == 0.25
    assert bus.history_size == 7
    assert bus.failure_threshold == 5
    assert bus.propagate_exceptions is True
    assert (bus._queue.maxsize, bus._queue.overflow) == (3, "drop_oldest")
    assert bus.max_depth == 4
    assert bus.slow_after == 0.125
    from blinker_events import flask as integration

    assert integration._EXIT_TIMEOUTS[bus] == 2.5
    assert state_of(app).bridged == {
        "request_started": "flask.request_started",
        "message_flashed": "flask.message_flashed",
    }
    assert set(CONFIG_DEFAULTS) == {
        "BLINKER_EVENTS_TIMEOUT",
        "BLINKER_EVENTS_HISTORY_SIZE",
        "BLINKER_EVENTS_FAILURE_THRESHOLD",
        "BLINKER_EVENTS_PROPAGATE_EXCEPTIONS",
        "BLINKER_EVENTS_QUEUE_SIZE",
        "BLINKER_EVENTS_OVERFLOW",
        "BLINKER_EVENTS_MAX_DEPTH",
        "BLINKER_EVENTS_SLOW_AFTER",
        "BLINKER_EVENTS_SHUTDOWN_TIMEOUT",
        "BLINKER_EVENTS_FLASK_SIGNALS",
        "BLINKER_EVENTS_OWN_BUS",
    }


def test_queue_size_and_overflow_keys_govern_publish_nowait(make_app: MakeApp) -> None:
    """QUEUE_SIZE=1, OVERFLOW="raise": one event in the receiver, one queued, the third is refused."""
    bus = get_bus(make_app({"BLINKER_EVENTS_QUEUE_SIZE": 1, "BLINKER_EVENTS_OVERFLOW": "raise"}))
    started, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def hold(event: Event) -> None:
        started.set()
        release.wait(5)
        seen.append(event.data["n"])

    bus.subscribe(Demo.PING, hold)
    first = bus.publish_nowait(Event(Demo.PING, {"n": 1}))
    assert started.wait(5)
    second = bus.publish_nowait(Event(Demo.PING, {"n": 2}))
    with pytest.raises(QueueFullError):
        bus.publish_nowait(Event(Demo.PING, {"n": 3}))
    release.set()
    first.result(5)
    second.result(5)
    assert seen == [1, 2]
    assert bus.stats()["rejected"] == 1


@pytest.mark.parametrize(
    ("testing", "configured", "expected"),
    [
        (True, None, True),
        (False, None, False),
        (True, False, False),
        (False, True, True),
        (True, True, True),
    ],
)
def test_propagation_defaults_to_app_testing_and_an_explicit_value_wins(
    make_app: MakeApp, testing: bool, configured: bool | None, expected: bool
) -> None:
    config: dict[str, Any] = {"TESTING": testing}
    if configured is not None:
        config["BLINKER_EVENTS_PROPAGATE_EXCEPTIONS"] = configured
    assert get_bus(make_app(config)).propagate_exceptions is expected


def test_under_testing_a_raising_receiver_raises_through_the_view(make_app: MakeApp) -> None:
    app = make_app({"TESTING": True})

    def broken(event: Event) -> None:
        raise ZeroDivisionError("receiver bug")

    get_bus(app).subscribe(Demo.PING, broken)

    @app.post("/")
    def view() -> str:
        current_events.publish_sync(Event(Demo.PING))
        return "unreachable"

    with pytest.raises(ZeroDivisionError, match="receiver bug"):
        app.test_client().post("/")


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("BLINKER_EVENTS_TIMEOUT", -1, ValueError),
        ("BLINKER_EVENTS_TIMEOUT", "5", TypeError),
        ("BLINKER_EVENTS_HISTORY_SIZE", -1, ValueError),
        ("BLINKER_EVENTS_FAILURE_THRESHOLD", 0, ValueError),
        ("BLINKER_EVENTS_PROPAGATE_EXCEPTIONS", "yes", TypeError),
        ("BLINKER_EVENTS_QUEUE_SIZE", 0, ValueError),
        ("BLINKER_EVENTS_OVERFLOW", "drop_newest", ValueError),
        ("BLINKER_EVENTS_MAX_DEPTH", 1.5, TypeError),
        ("BLINKER_EVENTS_SHUTDOWN_TIMEOUT", 0, ValueError),
        ("BLINKER_EVENTS_OWN_BUS", "yes", TypeError),
    ],
)
def test_a_bad_config_value_is_refused_naming_its_key_before_anything_changes(
    key: str, value: Any, error: type[Exception]
) -> None:
    app = Flask("bad")
    app.config[key] = value
    app.config["BLINKER_EVENTS_FLASK_SIGNALS"] = ["request_finished"]
    connected = len(flask.request_finished.receivers)
    before = default_bus_settings()
    with pytest.raises(error, match=f"^{key}"):
        BlinkerEvents().init_app(app)
    assert "blinker_events" not in app.extensions
    assert len(flask.request_finished.receivers) == connected
    assert default_bus_settings() == before
    assert blinker_events.default_bus.dispatch_context is None


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("BLINKER_EVENTS_TIMOUT", "BLINKER_EVENTS_TIMEOUT"),
        ("BLINKER_EVENTS_FLASK_SIGNAL", "BLINKER_EVENTS_FLASK_SIGNALS"),
        ("BLINKER_EVENTS_COLOUR", None),
        ("BLINKER_EVENTS", None),  # the Django app's dict, not read by Flask
    ],
)
def test_an_unknown_config_key_is_refused_naming_it_before_anything_changes(key: str, suggestion: str | None) -> None:
    app = Flask("typo")
    app.config.update({key: 5, "BLINKER_EVENTS_TIMEOUT": 0.5, "BLINKER_EVENTS_FLASK_SIGNALS": ["request_finished"]})
    connected = len(flask.request_finished.receivers)
    before = default_bus_settings()
    with pytest.raises(ValueError, match=f"^{key}: unknown config key") as info:
        BlinkerEvents().init_app(app)
    hint = f"did you mean BLINKER_EVENTS_{(suggestion or '').removeprefix('BLINKER_EVENTS_')}?"
    assert (hint in str(info.value)) is (suggestion is not None)
    assert "known: BLINKER_EVENTS_TIMEOUT, " in str(info.value)
    assert "blinker_events" not in app.extensions
    assert len(flask.request_finished.receivers) == connected
    assert default_bus_settings() == before


def test_config_keys_of_other_extensions_are_not_checked(make_app: MakeApp) -> None:
    app = make_app({"BLINKER_EVENTSX": 1, "SQLALCHEMY_DATABASE_URI": "sqlite://", "blinker_events_timout": 1})
    assert get_bus(app).timeout is None


def test_an_unknown_flask_signal_name_is_a_value_error_naming_the_key() -> None:
    app = Flask("bad")
    app.config["BLINKER_EVENTS_FLASK_SIGNALS"] = ["request_finished", "request_exploded"]
    connected = len(flask.request_finished.receivers)
    with pytest.raises(ValueError, match=r"^BLINKER_EVENTS_FLASK_SIGNALS: unknown Flask signal 'request_exploded'"):
        BlinkerEvents().init_app(app)
    assert "blinker_events" not in app.extensions
    assert len(flask.request_finished.receivers) == connected


def test_flask_signals_must_be_a_list_of_names_not_one_string() -> None:
    app = Flask("bad")
    app.config["BLINKER_EVENTS_FLASK_SIGNALS"] = "request_finished"
    with pytest.raises(TypeError, match=r"^BLINKER_EVENTS_FLASK_SIGNALS must be a list"):
        BlinkerEvents().init_app(app)
    assert "blinker_events" not in app.extensions


def test_flask_signal_names_and_their_event_types() -> None:
    assert set(FLASK_SIGNALS) >= {
        "request_started",
        "request_finished",
        "request_tearing_down",
        "got_request_exception",
        "template_rendered",
        "before_render_template",
        "appcontext_pushed",
        "appcontext_popped",
        "appcontext_tearing_down",
        "message_flashed",
    }
    assert flask_event_type("request_finished") == "flask.request_finished"
    with pytest.raises(ValueError, match="signal_name"):
        flask_event_type("nope")


def test_a_passed_bus_is_shared_and_keeps_its_own_settings_and_dispatch_context(bus: EventBus) -> None:
    bus.set_timeout(2.0)

    def mine() -> AbstractContextManager[None]:
        return nullcontext()

    bus.set_dispatch_context(mine)
    ext = BlinkerEvents(bus=bus)
    apps = [Flask("one"), Flask("two")]
    for app in apps:
        app.config.update(TESTING=True, BLINKER_EVENTS_TIMEOUT=0.1, BLINKER_EVENTS_HISTORY_SIZE=5)
        ext.init_app(app)
    try:
        assert get_bus(apps[0]) is get_bus(apps[1]) is bus
        assert (bus.timeout, bus.history_size, bus.propagate_exceptions, bus.name) == (
            2.0,
            1000,
            False,
            "blinker_events",
        )
        assert bus.dispatch_context is mine
        assert state_of(apps[0]).owns_bus is False
    finally:
        for app in apps:
            assert ext.shutdown_app(app) == 0


def test_a_non_bus_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^bus must be an EventBus"):
        BlinkerEvents(bus="bus")  # type: ignore[arg-type]


def test_init_app_twice_on_one_app_raises_and_keeps_the_first_state(make_app: MakeApp) -> None:
    ext = BlinkerEvents()
    app = make_app(ext=ext)
    state = state_of(app)
    with pytest.raises(RuntimeError, match="already initialised on app 'app'"):
        ext.init_app(app)
    with pytest.raises(RuntimeError, match="already initialised"):
        BlinkerEvents().init_app(app)
    assert state_of(app) is state


# -- accessors -------------------------------------------------------------------


def test_current_events_and_get_bus_need_an_initialised_app(make_app: MakeApp) -> None:
    app = make_app()
    with pytest.raises(RuntimeError, match="outside of application context"):
        current_events.publish_sync(Event(Demo.PING))
    with pytest.raises(RuntimeError, match="outside of application context"):
        get_bus()
    with app.app_context():
        assert get_bus() is get_bus(app)
        assert current_events.get_subscriber_count() == 0
    bare = Flask("bare")
    with bare.app_context(), pytest.raises(RuntimeError, match=r"not initialised on app 'bare'.*init_app"):
        current_events.publish_sync(Event(Demo.PING))


# -- views publishing ------------------------------------------------------------


def test_a_sync_view_reaches_sync_receivers_inline_and_async_ones_with_the_app_context(make_app: MakeApp) -> None:
    app = make_app()
    seen: list[tuple[str, Any]] = []

    def sync_receiver(event: Event) -> None:
        seen.append(("sync", request.path))  # inline: the request itself

    async def async_receiver(event: Event) -> None:
        await asyncio.sleep(0)
        seen.append(("async", current_app.name))  # on the bus loop, in the app context pushed there

    get_bus(app).subscribe(Demo.PING, sync_receiver)
    get_bus(app).subscribe(Demo.PING, async_receiver)

    @app.post("/sync")
    def view() -> dict[str, int]:
        report = current_events.publish_sync(Event(Demo.PING))
        return {"ok": len(report.succeeded)}

    response = app.test_client().post("/sync")
    assert (response.status_code, response.json) == (200, {"ok": 2})
    assert seen == [("sync", "/sync"), ("async", "app")]


def test_an_async_view_reaches_async_receivers_in_the_request_and_sync_ones_on_a_bus_thread(
    make_app: MakeApp,
) -> None:
    app = make_app()
    seen: list[tuple[Any, ...]] = []

    def sync_receiver(event: Event) -> None:
        on_pool = threading.current_thread().name.startswith("app-pool")
        seen.append(("sync", current_app.name, on_pool, request.path, g.get("marker")))

    async def async_receiver(event: Event) -> None:
        await asyncio.sleep(0)
        seen.append(("async", request.path, g.marker))  # on the view's loop, in the request

    get_bus(app).subscribe(Demo.PING, sync_receiver)
    get_bus(app).subscribe(Demo.PING, async_receiver)

    @app.post("/async")
    async def view() -> dict[str, int]:
        g.marker = "view"
        report = await current_events.publish(Event(Demo.PING))
        return {"ok": len(report.succeeded)}

    response = app.test_client().post("/async")
    assert (response.status_code, response.json) == (200, {"ok": 2})
    # the sync receiver: a fresh app context (its own g) on a bus thread, the view's request still alive
    assert sorted(seen) == [("async", "/async", "view"), ("sync", "app", True, "/async", None)]


@pytest.mark.parametrize("view_kind", ["sync", "async"])
def test_a_hung_async_receiver_is_cut_at_the_timeout_and_the_request_succeeds(
    make_app: MakeApp, view_kind: str
) -> None:
    app = make_app({"BLINKER_EVENTS_TIMEOUT": 0.2})
    reports: list[DeliveryReport] = []

    async def hung(event: Event) -> None:
        await asyncio.sleep(3)

    get_bus(app).subscribe(Demo.PING, hung)

    if view_kind == "sync":

        @app.post("/")
        def sync_view() -> str:
            reports.append(current_events.publish_sync(Event(Demo.PING)))
            return "done"

    else:

        @app.post("/")
        async def async_view() -> str:
            reports.append(await current_events.publish(Event(Demo.PING)))
            return "done"

    started = time.perf_counter()
    response = app.test_client().post("/")
    elapsed = time.perf_counter() - started
    assert (response.status_code, response.text) == (200, "done")
    assert elapsed < 1.5
    assert [s.name for s in reports[0].timed_out] == [get_bus(app).get_subscriptions()[0].name]
    assert reports[0].succeeded == []


@pytest.mark.parametrize("view_kind", ["sync", "async"])
def test_a_raising_receiver_does_not_fail_the_request_with_propagation_off(make_app: MakeApp, view_kind: str) -> None:
    app = make_app({"TESTING": True, "BLINKER_EVENTS_PROPAGATE_EXCEPTIONS": False})
    reached: list[str] = []

    def broken(event: Event) -> None:
        raise ZeroDivisionError("receiver bug")

    get_bus(app).subscribe(Demo.PING, broken)
    get_bus(app).subscribe(Demo.PING, lambda e: reached.append("after"))

    if view_kind == "sync":

        @app.post("/")
        def sync_view() -> dict[str, list[str]]:
            report = current_events.publish_sync(Event(Demo.PING))
            return {"failed": [type(e).__name__ for _, e in report.failed]}

    else:

        @app.post("/")
        async def async_view() -> dict[str, list[str]]:
            report = await current_events.publish(Event(Demo.PING))
            return {"failed": [type(e).__name__ for _, e in report.failed]}

    response = app.test_client().post("/")
    assert (response.status_code, response.json) == (200, {"failed": ["ZeroDivisionError"]})
    assert reached == ["after"]


# -- Flask's own signals ---------------------------------------------------------


def test_bridged_request_finished_delivers_the_response_with_the_app_as_source(make_app: MakeApp) -> None:
    app = make_app({"BLINKER_EVENTS_FLASK_SIGNALS": ["request_finished"]})
    got: list[Event] = []
    get_bus(app).subscribe("flask.request_finished", got.append)

    @app.get("/hello")
    def hello() -> tuple[str, int]:
        return "hello", 202

    response = app.test_client().get("/hello")
    assert (response.status_code, response.text) == (202, "hello")
    assert len(got) == 1
    event = got[0]
    assert event.event_type == "flask.request_finished"
    assert event.source is app
    assert list(event.data) == ["response"]
    assert isinstance(event.data["response"], flask.Response)
    assert (event.data["response"].status_code, event.data["response"].get_data()) == (202, b"hello")


def test_bridged_got_request_exception_carries_the_exception(make_app: MakeApp) -> None:
    app = make_app({"BLINKER_EVENTS_FLASK_SIGNALS": ["got_request_exception", "request_started"]})
    got: list[Event] = []
    get_bus(app).subscribe(None, got.append)
    boom = LookupError("view bug")

    @app.get("/boom")
    def fail() -> str:
        raise boom

    assert app.test_client().get("/boom").status_code == 500
    assert [(e.event_type, dict(e.data), e.source) for e in got] == [
        ("flask.request_started", {}, app),
        ("flask.got_request_exception", {"exception": boom}, app),
    ]


def test_bridges_of_two_apps_on_one_shared_bus_do_not_cross(bus: EventBus) -> None:
    ext = BlinkerEvents(bus=bus)
    apps = [Flask("one"), Flask("two")]
    for app in apps:
        app.config["BLINKER_EVENTS_FLASK_SIGNALS"] = ["request_finished"]
        ext.init_app(app)

        @app.get("/")
        def index() -> str:
            return current_app.name

    sources: list[str] = []
    bus.subscribe("flask.request_finished", lambda e: sources.append(e.source.name))
    only_two: list[str] = []
    bus.subscribe("flask.request_finished", lambda e: only_two.append(e.source.name), sender=apps[1])
    try:
        apps[0].test_client().get("/")
        apps[1].test_client().get("/")
        apps[0].test_client().get("/")
        assert sources == ["one", "two", "one"]
        assert only_two == ["two"]
    finally:
        for app in apps:
            assert ext.shutdown_app(app) == 0
    apps[0].test_client().get("/")
    assert sources == ["one", "two", "one"]  # unbridged


def test_shutdown_app_unbridges_flask_signals(make_app: MakeApp) -> None:
    before = len(flask.request_finished.receivers)
    ext = BlinkerEvents()
    app = make_app({"BLINKER_EVENTS_FLASK_SIGNALS": ["request_finished"]}, ext=ext)
    assert len(flask.request_finished.receivers) == before + 1
    assert ext.shutdown_app(app) == 0
    assert len(flask.request_finished.receivers) == before
    assert state_of(app).bridged == {}


# -- the app context on the bus's threads ---------------------------------------


def test_a_worker_queued_receiver_gets_a_fresh_app_context(make_app: MakeApp) -> None:
    app = make_app()
    seen: list[tuple[str, Any, str]] = []
    torn_down: list[Any] = []

    @app.teardown_appcontext
    def record(exc: BaseException | None) -> None:
        torn_down.append(g.get("job"))

    def in_worker(event: Event) -> None:
        g.job = event.data["n"]  # its own g: writable, and the view's marker is not in it
        seen.append((current_app.name, g.get("marker"), threading.current_thread().name))

    get_bus(app).subscribe(Demo.PING, in_worker)
    futures: list[Future[DeliveryReport]] = []

    @app.post("/")
    def view() -> str:
        g.marker = "request"
        futures.append(current_events.publish_nowait(Event(Demo.PING, {"n": 1})))
        return "queued"

    assert app.test_client().post("/").text == "queued"
    report = futures[0].result(5)
    assert (len(report.succeeded), list(report.failed)) == (1, [])
    assert len(seen) == 1
    assert seen[0][:2] == ("app", None)
    assert seen[0][2].startswith("app-pool")
    assert sorted(torn_down, key=str) == [1, None]  # the worker's context was torn down too


def test_receivers_of_events_published_outside_any_app_get_the_first_apps_context(make_app: MakeApp) -> None:
    app = make_app(name="home")
    seen: list[str] = []
    get_bus(app).subscribe(Demo.PING, lambda e: seen.append(current_app.name))
    get_bus(app).publish_nowait(Event(Demo.PING)).result(5)
    assert seen == ["home"]


def test_on_a_shared_bus_the_publishing_apps_context_is_pushed(bus: EventBus) -> None:
    ext = BlinkerEvents(bus=bus)
    apps = [Flask("one"), Flask("two")]
    seen: list[str] = []
    bus.subscribe(Demo.PING, lambda e: seen.append(current_app.name))
    for app in apps:
        ext.init_app(app)

        @app.post("/")
        def view() -> str:
            current_events.publish_nowait(Event(Demo.PING)).result(5)
            return "ok"

    try:
        apps[1].test_client().post("/")
        apps[0].test_client().post("/")
        bus.publish_nowait(Event(Demo.PING)).result(5)  # no app: the first one initialised
        assert seen == ["two", "one", "one"]
    finally:
        for app in apps:
            ext.shutdown_app(app)


def test_bridged_app_context_signals_fired_by_pushed_contexts_do_not_loop(make_app: MakeApp) -> None:
    """The contexts pushed for bus threads send appcontext_pushed/popped; bridged, they
    are published like any other send, and end."""
    app = make_app({"BLINKER_EVENTS_FLASK_SIGNALS": ["appcontext_pushed", "appcontext_popped"]})
    pushed: list[str] = []

    async def on_pushed(event: Event) -> None:
        pushed.append(event.source.name)

    get_bus(app).subscribe("flask.appcontext_pushed", on_pushed)
    get_bus(app).subscribe(Demo.PING, lambda e: None)
    with app.app_context():
        get_bus(app).publish_nowait(Event(Demo.PING)).result(5)
    assert get_bus(app).shutdown(5) == 0
    types = [e.event_type for e in get_bus(app).get_history()]
    assert types.count(Demo.PING) == 1
    assert set(types) == {"flask.appcontext_pushed", "flask.appcontext_popped", Demo.PING}
    assert set(pushed) == {"app"}
    assert len(pushed) == types.count("flask.appcontext_pushed")


# -- process exit ------------------------------------------------------------------

EXIT_SCRIPT = """
import time
from flask import Flask, current_app
from blinker_events import Event
from blinker_events.flask import BlinkerEvents, current_events, get_bus

ext = BlinkerEvents()
drained, cut = Flask("drained"), Flask("cut")
# "drained" is on the default bus, "cut" on a bus of its own (its own timeout)
cut.config.update(BLINKER_EVENTS_SHUTDOWN_TIMEOUT=0.05, BLINKER_EVENTS_OWN_BUS=True)
for app in (drained, cut):
    ext.init_app(app)

    def slow(event, name=app.name):
        time.sleep(event.data["seconds"])
        print("delivered", name, event.data["n"], flush=True)

    get_bus(app).subscribe("job", slow)

    @app.post("/")
    def view():
        seconds = 0.05 if current_app.name == "drained" else 0.5
        for n in range(3):
            current_events.publish_nowait(Event("job", {"n": n, "seconds": seconds}))
        return "queued"

print(drained.test_client().post("/").text, cut.test_client().post("/").text, flush=True)
"""


def test_the_worker_queue_is_drained_at_process_exit_within_the_shutdown_timeout() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "queued queued"
    assert [line for line in lines if "drained" in line] == [
        "delivered drained 0",
        "delivered drained 1",
        "delivered drained 2",
    ]
    # The cut bus waited 0.05 s: the queued events were dropped, visibly.
    assert "delivered cut 1" not in lines
    assert "delivered cut 2" not in lines
    assert done.stderr.count("shutdown: dropped") == 2


# -- the example app ---------------------------------------------------------------


def test_example_views_publish_order_created_and_events_lists_them(example_app: Flask) -> None:
    client = example_app.test_client()
    first = client.post("/orders", json={"item": "tea", "quantity": 2})
    assert first.status_code == 201
    assert first.json == {
        "order": {"id": 1, "item": "tea", "quantity": 2},
        "delivery": {
            "succeeded": ["reserve_stock"],
            "failed": ["sync_to_crm (ConnectionError)"],
            "timed_out": ["notify_customer"],  # odd order: the slow gateway, cut at the timeout
            "skipped": [],
            "disabled": [],
        },
    }
    second = client.post("/orders/async", json={"item": "coffee"})
    assert second.status_code == 201
    assert second.json is not None
    assert second.json["order"] == {"id": 2, "item": "coffee", "quantity": 1}
    assert sorted(second.json["delivery"]["succeeded"]) == ["notify_customer", "reserve_stock"]
    third = client.post("/orders", json={"item": "tea"})
    assert third.json is not None
    assert third.json["delivery"]["disabled"] == ["sync_to_crm"]  # third failure in a row
    fourth = client.post("/orders/async", json={})
    assert fourth.json is not None
    assert fourth.json["delivery"]["skipped"] == ["sync_to_crm (disabled)"]

    page = client.get("/events")
    assert (page.status_code, page.mimetype) == (200, "text/html")
    # newest first: type, source, succeeded, failed, timed out, skipped
    finished = ["flask.request_finished", "app examples.flask_app.app", "1", "0", "0", "0"]
    reserved = ["stock.reserved", "stock", "1", "0", "0", "0"]  # published by reserve_stock: it ends first
    assert [row[1:7] for row in table(page.text, "events")] == [
        finished,
        ["order.created", "/orders/async", "2", "0", "0", "1"],
        reserved,
        finished,
        ["SystemEventType.SUBSCRIBER_DISABLED", "examples.flask_app.app", "1", "0", "0", "0"],
        ["order.created", "/orders", "1", "1", "1", "0"],
        reserved,
        finished,
        ["order.created", "/orders/async", "2", "1", "0", "0"],
        reserved,
        finished,
        ["order.created", "/orders", "1", "1", "1", "0"],
        reserved,
    ]
    assert table(page.text, "subscriptions") == [
        ["reserve_stock", "order.created", "0", "no"],
        ["notify_customer", "order.created", "0", "no"],
        ["sync_to_crm", "order.created", "3", "yes"],
        ["check_restock", "stock.reserved", "0", "no"],
        ["log_disabled", "SystemEventType.SUBSCRIBER_DISABLED", "0", "no"],
        ["count_status", "flask.request_finished", "0", "no"],
    ]
    book = example_app.extensions["orders_example"]
    assert book.reserved == book.restock_checked == [1, 2, 3, 4]
    assert book.notified == [2, 4]
    assert book.statuses == {201: 4, 200: 1}  # the orders, and the /events page


def test_example_form_posts_redirect_to_the_events_page(example_app: Flask) -> None:
    client = example_app.test_client()
    response = client.post("/orders/async", data={"item": "coffee"})
    assert (response.status_code, response.location) == (303, "/events")
    assert client.get("/").location == "/events"
    assert [row[1:3] for row in table(client.get("/events").text, "events")][-2:] == [
        ["order.created", "/orders/async"],
        ["stock.reserved", "stock"],
    ]


def test_example_events_page_draws_the_event_flow_as_svg_and_mermaid(example_app: Flask) -> None:
    import html
    import xml.etree.ElementTree as ET

    from blinker_events.flow import to_mermaid

    client = example_app.test_client()
    client.post("/orders", json={"item": "tea"})
    page = client.get("/events").text
    svg = ET.fromstring(page.split('<div id="flow" style="overflow-x: auto">', 1)[1].split("</div>", 1)[0])
    ns = "{http://www.w3.org/2000/svg}"
    boxes = [(g.get("data-kind"), [t.text for t in g.iter(f"{ns}text")]) for g in svg.iter(f"{ns}g")]
    # The order's tree, durations aside; then the bridged request_finished of the POST.
    assert [(kind, lines[:-1] if kind == "event" else lines) for kind, lines in boxes] == [
        ("event", ["order.created", "from '/orders'"]),
        ("succeeded", ["reserve_stock", "ok"]),
        ("event", ["stock.reserved", "from 'stock'"]),
        ("succeeded", ["check_restock", "ok"]),
        ("timed_out", ["notify_customer", "timed out"]),
        ("failed", ["sync_to_crm", "failed: ConnectionError"]),
        ("event", ["flask.request_finished", "from <Flask 'examples.flask_app.a\u2026"]),  # cut to a line
        ("succeeded", ["count_status", "ok"]),
    ]
    assert re.fullmatch(r"\d+ \u00b5s|\d+\.\d ms|\d+\.\d\d s", boxes[0][1][-1])
    mermaid = html.unescape(page.split('<pre id="flow-mermaid">', 1)[1].split("</pre>", 1)[0])
    # What the page drew is the history as it was: all but this GET's own request_finished.
    assert mermaid == to_mermaid(get_bus(example_app).get_delivery_reports()[:-1], max_nodes=150)


def test_example_app_under_a_real_wsgi_server() -> None:
    app = create_app({"BLINKER_EVENTS_TIMEOUT": 0.1})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    started = time.perf_counter()
    try:

        def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
            req = urllib.request.Request(
                base + path, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.load(resp)

        assert post("/orders", {"item": "tea", "quantity": 3}) == (
            201,
            {
                "order": {"id": 1, "item": "tea", "quantity": 3},
                "delivery": {
                    "succeeded": ["reserve_stock"],
                    "failed": ["sync_to_crm (ConnectionError)"],
                    "timed_out": ["notify_customer"],
                    "skipped": [],
                    "disabled": [],
                },
            },
        )
        status, body = post("/orders/async", {"item": "coffee"})
        assert (status, body["order"]) == (201, {"id": 2, "item": "coffee", "quantity": 1})
        assert sorted(body["delivery"]["succeeded"]) == ["notify_customer", "reserve_stock"]
        with urllib.request.urlopen(base + "/events", timeout=5) as resp:
            assert resp.status == 200
            html = resp.read().decode()
        assert [row[1:3] for row in table(html, "events")] == [
            ["flask.request_finished", "app examples.flask_app.app"],
            ["order.created", "/orders/async"],
            ["stock.reserved", "stock"],
            ["flask.request_finished", "app examples.flask_app.app"],
            ["order.created", "/orders"],
            ["stock.reserved", "stock"],
        ]
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
        assert app.extensions["blinker_events"].extension.shutdown_app(app) == 0
    assert not thread.is_alive()
    assert time.perf_counter() - started < 5
