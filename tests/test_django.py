"""The Django integration: settings, autodiscovery, the signal bridge,
publish_on_commit, sync and async views, and the example under a real ASGI
server.

Django is configured here (``settings.configure``), not through a global
``DJANGO_SETTINGS_MODULE``, so the rest of the suite runs without it; the
default bus is put back as it was around this module.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django")
pytest.importorskip("pytest_django")

from django.conf import settings  # noqa: E402

import blinker_events  # noqa: E402
from blinker_events import Event, Subscription  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = {
    "signal": "django.db.models.signals.post_save",
    "sender": "orders.Order",
    "event_type": "orders.order_saved",
}
#: The settings of this module's tests.
TEST_EVENTS: dict[str, Any] = {"TIMEOUT": 2.0, "AUTODISCOVER": False, "SIGNALS": [BRIDGE]}

bus = blinker_events.default_bus


def _bus_state() -> tuple[Any, ...]:
    return (
        bus.timeout,
        bus.history_size,
        bus.failure_threshold,
        bus.propagate_exceptions,
        bus.max_depth,
        bus.queue_size,
        bus.overflow,
        bus.sync_executor,
    )


def _restore_bus(state: tuple[Any, ...], dispatch_context: Any = None) -> None:
    """Disconnect the Django bridges and put the bus settings (and dispatch context) back."""
    from blinker_events.django import apply_settings

    apply_settings({"AUTODISCOVER": False, "SIGNALS": []})
    bus.set_dispatch_context(dispatch_context)
    bus.set_timeout(state[0])
    bus.set_history_size(state[1])
    bus.set_failure_threshold(state[2])
    bus.set_propagate_exceptions(state[3])
    bus.set_max_depth(state[4])
    bus.set_queue_size(state[5])
    bus.set_overflow(state[6])
    bus.set_sync_executor(state[7])


PRISTINE = _bus_state()
PRISTINE_CONTEXT = bus.dispatch_context
if not settings.configured:
    settings.configure(
        SECRET_KEY="tests",
        DEBUG=False,
        ALLOWED_HOSTS=["testserver", "127.0.0.1"],
        INSTALLED_APPS=["blinker_events.django", "examples.django_project.orders"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        ROOT_URLCONF="examples.django_project.project.urls",
        MIDDLEWARE=[],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        BLINKER_EVENTS=TEST_EVENTS,
    )
    django.setup()
    # setup() configured the default bus; other test modules get it back as
    # it was, and this module's tests get the settings by the fixture below.
    _restore_bus(PRISTINE, PRISTINE_CONTEXT)

from django.core.signals import request_finished  # noqa: E402
from django.db import transaction  # noqa: E402
from django.db.models.signals import post_save  # noqa: E402
from django.test import override_settings  # noqa: E402

from blinker_events.django import apply_settings, autodiscover, signal_event_type  # noqa: E402
from examples.django_project.orders.models import Order  # noqa: E402

from .conftest import free_port, wait_for_port  # noqa: E402
from .postgres_server import PostgresServer, need_postgres  # noqa: E402


@pytest.fixture(autouse=True)
def django_bus() -> Iterator[None]:
    """This module's settings on the default bus; afterwards the bus as it was."""
    before, dispatch_context = _bus_state(), bus.dispatch_context
    apply_settings(TEST_EVENTS)
    blinker_events.clear_history()
    yield
    _restore_bus(before, dispatch_context)
    blinker_events.clear_history()


@pytest.fixture
def subscribe() -> Iterator[Callable[..., Subscription]]:
    """``subscribe(event_type, fn, **options)`` on the default bus, undone afterwards."""
    made: list[Subscription] = []

    def sub(event_type: Any, fn: Callable[..., Any], **options: Any) -> Subscription:
        subscription = blinker_events.subscribe(event_type, fn, **options)
        made.append(subscription)
        return subscription

    yield sub
    for subscription in made:
        subscription.unsubscribe()


# -- settings ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("forget_example_events")
def test_settings_are_applied_by_override_settings_and_restored_after() -> None:
    saved: list[Event] = []
    blinker_events.subscribe("orders.order_saved", saved.append)
    try:
        custom = {
            "TIMEOUT": 0.5,
            "HISTORY_SIZE": 7,
            "FAILURE_THRESHOLD": 2,
            "PROPAGATE_EXCEPTIONS": True,
            "QUEUE_SIZE": 5,
            "OVERFLOW": "raise",
            "MAX_DEPTH": 4,
            "SYNC_EXECUTOR": "worker",
            "AUTODISCOVER": False,
            "SIGNALS": [],
        }
        with override_settings(BLINKER_EVENTS=custom):
            assert _bus_state() == (0.5, 7, 2, True, 4, 5, "raise", "worker")
            Order.objects.create(item="unbridged")
            assert saved == []
        # The module's settings again: unset keys take the defaults.
        assert _bus_state() == (2.0, 1000, 3, False, 16, 10000, "block", "thread_sensitive")
        Order.objects.create(item="bridged")
        assert [e.data["instance"].item for e in saved] == ["bridged"]
        with override_settings(BLINKER_EVENTS=None):  # None, like unset: every default, no bridge
            assert _bus_state() == (None, 1000, 3, False, 16, 10000, "block", "thread_sensitive")
            assert len(_example_receivers()) == 3  # AUTODISCOVER defaults to "events"
        assert bus.timeout == 2.0
    finally:
        blinker_events.unsubscribe("orders.order_saved", saved.append)


def test_settings_fixture_of_pytest_django_reloads_too(settings: Any) -> None:
    settings.BLINKER_EVENTS = {"TIMEOUT": 0.25, "SIGNALS": [], "AUTODISCOVER": False}
    assert bus.timeout == 0.25


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"TIMEOUT": -1}, ValueError, "TIMEOUT"),
        ({"HISTORY_SIZE": "10"}, TypeError, "HISTORY_SIZE"),
        ({"PROPAGATE_EXCEPTIONS": 1}, TypeError, "PROPAGATE_EXCEPTIONS"),
        ({"OVERFLOW": "spill"}, ValueError, "OVERFLOW"),
        ({"SYNC_EXECUTOR": "main"}, ValueError, "SYNC_EXECUTOR"),
        ({"AUTODISCOVER": "no such-module"}, TypeError, "AUTODISCOVER"),
        ({"TIMOUT": 1}, ValueError, "'TIMOUT'"),
        ({"SIGNALS": {"signal": "x"}}, TypeError, "SIGNALS"),
        ({"SIGNALS": [{"sender": "orders.Order"}]}, ValueError, "SIGNALS[0]"),
        ({"SIGNALS": [{"signal": "django.db.models.signals.nope"}]}, ValueError, "SIGNALS'][0]"),
        ({"SIGNALS": [{"signal": "django.db.models.signals.post_save", "sender": "orders.Nope"}]}, LookupError, "Nope"),
        ({"SIGNALS": [{"signal": "django.dispatch.Signal"}]}, TypeError, "django.dispatch.Signal"),
    ],
)
def test_bad_settings_raise_naming_the_key_and_change_nothing(
    config: dict[str, Any], error: type[Exception], message: str
) -> None:
    before = _bus_state()
    with pytest.raises(error) as info:
        apply_settings({"TIMEOUT": 0.1, **config})
    assert message in str(info.value)
    assert _bus_state() == before


def test_slow_after_comes_from_the_settings_like_every_bus_setting() -> None:
    assert bus.slow_after is None
    with override_settings(BLINKER_EVENTS={**TEST_EVENTS, "SLOW_AFTER": 0.75}):
        assert bus.slow_after == 0.75
    assert bus.slow_after is None
    with pytest.raises(TypeError, match="SLOW_AFTER must be a number of seconds or None, not str"):
        apply_settings({**TEST_EVENTS, "SLOW_AFTER": "soon"})
    assert bus.slow_after is None


def test_default_event_types_of_bridged_signals() -> None:
    assert signal_event_type(post_save, Order) == "orders.order.post_save"
    assert signal_event_type(request_finished) == "django.request_finished"


# -- autodiscovery -------------------------------------------------------------


def _example_receivers() -> list[Subscription]:
    return [s for s in bus.get_subscriptions() if s.name.startswith("examples.django_project.orders.events.")]


@pytest.fixture
def forget_example_events() -> Iterator[None]:
    """Undo the example's autodiscovered receivers (and its module)."""
    yield
    sys.modules.pop("examples.django_project.orders.events", None)
    for sub in _example_receivers():
        sub.unsubscribe()


@pytest.mark.usefixtures("forget_example_events")
def test_autodiscovery_imports_events_modules_once() -> None:
    assert _example_receivers() == []
    with override_settings(BLINKER_EVENTS={**TEST_EVENTS, "AUTODISCOVER": "events"}):
        names = sorted(s.name.rsplit(".", 1)[1] for s in _example_receivers())
        assert names == ["audit", "notify_warehouse", "write_receipt"]
        first = _example_receivers()
        # Discover again, run ready() again, import again: nothing doubles.
        assert autodiscover("events") == ["examples.django_project.orders.events"]
        django.apps.apps.get_app_config("blinker_events").ready()
        module = importlib.import_module("examples.django_project.orders.events")
        assert (
            blinker_events.subscribe("orders.order_placed", module.write_receipt)
            is first[[s.callback for s in first].index(module.write_receipt)]
        )
        assert _example_receivers() == first
        assert blinker_events.get_subscriber_count("orders.order_placed") == 2


def test_autodiscover_false_imports_nothing() -> None:
    assert autodiscover(None) == []
    assert autodiscover(False) == []
    assert "examples.django_project.orders.events" not in sys.modules


@pytest.mark.usefixtures("forget_example_events")
def test_autodiscover_true_is_the_default_module_as_in_the_setting() -> None:
    assert autodiscover(True) == ["examples.django_project.orders.events"]
    assert apply_settings({**TEST_EVENTS, "AUTODISCOVER": True})["AUTODISCOVER"] == "events"


@pytest.mark.parametrize("module", [1, "", "no such-module", b"events"])
def test_autodiscover_refuses_what_the_setting_refuses_naming_the_argument(module: object) -> None:
    with pytest.raises(TypeError, match=r"^module must be a module name or False"):
        autodiscover(module)  # type: ignore[arg-type]


# -- the post_save bridge ------------------------------------------------------


@pytest.mark.django_db
def test_bridged_post_save_delivers_the_instance(subscribe: Callable[..., Subscription]) -> None:
    got: list[Event] = []
    subscribe("orders.order_saved", got.append)
    order = Order.objects.create(item="book", quantity=2)
    order.quantity = 3
    order.save(update_fields=["quantity"])
    assert [e.data["instance"] for e in got] == [order, order]
    assert [e.data["created"] for e in got] == [True, False]
    assert got[1].data["update_fields"] == frozenset({"quantity"})
    assert all(e.source is Order and "signal" not in e.data for e in got)


@pytest.mark.django_db
def test_bridge_never_raises_into_save(subscribe: Callable[..., Subscription], caplog: Any) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("receiver broke")

    subscribe("orders.order_saved", broken)
    with override_settings(BLINKER_EVENTS={**TEST_EVENTS, "PROPAGATE_EXCEPTIONS": True}):
        order = Order.objects.create(item="still saved")
    assert Order.objects.get(pk=order.pk).item == "still saved"
    assert "django bridge: relaying a send of orders.order_saved failed" in caplog.text


# -- publish_on_commit ---------------------------------------------------------


@pytest.mark.django_db
def test_publish_on_commit_waits_for_the_commit(
    subscribe: Callable[..., Subscription], django_capture_on_commit_callbacks: Any
) -> None:
    from blinker_events.django import publish_on_commit

    got: list[Event] = []
    subscribe("orders.placed", got.append)
    event = Event("orders.placed", {"id": 1})
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            publish_on_commit(event)
            assert got == []
        assert got == []
    assert len(callbacks) == 1
    assert got == [event]


@pytest.mark.django_db(transaction=True)
def test_publish_on_commit_commit_rollback_and_autocommit(subscribe: Callable[..., Subscription]) -> None:
    from blinker_events.django import publish_on_commit

    got: list[str] = []
    subscribe("orders.placed", lambda e: got.append(e.data["what"]))
    with transaction.atomic():
        publish_on_commit(Event("orders.placed", {"what": "committed"}))
        with transaction.atomic():
            publish_on_commit(Event("orders.placed", {"what": "inner committed"}))
        try:
            with transaction.atomic():
                publish_on_commit(Event("orders.placed", {"what": "savepoint rolled back"}))
                raise ValueError
        except ValueError:
            pass
        assert got == []
    assert got == ["committed", "inner committed"]
    try:
        with transaction.atomic():
            publish_on_commit(Event("orders.placed", {"what": "rolled back"}))
            raise ValueError
    except ValueError:
        pass
    assert got == ["committed", "inner committed"]
    publish_on_commit(Event("orders.placed", {"what": "autocommit"}))
    assert got == ["committed", "inner committed", "autocommit"]
    with pytest.raises(TypeError, match="event must be an Event"):
        publish_on_commit("orders.placed")  # type: ignore[arg-type]


def test_publish_on_commit_refuses_a_bad_using_naming_it(subscribe: Callable[..., Subscription]) -> None:
    from blinker_events.django import publish_on_commit

    got: list[Event] = []
    subscribe("orders.placed", got.append)
    with pytest.raises(TypeError, match=r"^using must be a database alias \(a str\) or None, not int$"):
        publish_on_commit(Event("orders.placed"), using=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^using must be one of the DATABASES aliases \['default'\], not 'nodb'$"):
        publish_on_commit(Event("orders.placed"), using="nodb")
    assert got == []


@pytest.mark.django_db(transaction=True)
def test_publish_on_commit_never_raises_into_the_commit(subscribe: Callable[..., Subscription]) -> None:
    from blinker_events.django import publish_on_commit

    def broken(event: Event) -> None:
        raise RuntimeError("receiver broke")

    subscribe("orders.placed", broken)
    with override_settings(BLINKER_EVENTS={**TEST_EVENTS, "PROPAGATE_EXCEPTIONS": True}):
        with transaction.atomic():
            order = Order.objects.create(item="kept")
            publish_on_commit(Event("orders.placed", {"id": order.pk}))
    assert Order.objects.filter(pk=order.pk).exists()
    assert len(blinker_events.get_delivery_reports("orders.placed")[0].failed) == 1


# -- views ---------------------------------------------------------------------


class Receivers:
    """A sync receiver that uses the ORM and an async one, recording what they saw."""

    def __init__(self) -> None:
        self.sync_seen: list[tuple[int, int]] = []  # (order id, orders counted)
        self.sync_errors: list[BaseException] = []
        self.async_seen: list[int] = []

    def sync(self, event: Event) -> None:
        try:
            self.sync_seen.append((event.data["order_id"], Order.objects.filter(pk=event.data["order_id"]).count()))
        except BaseException as exc:  # SynchronousOnlyOperation would land here
            self.sync_errors.append(exc)
            raise

    async def async_(self, event: Event) -> None:
        await asyncio.sleep(0)
        self.async_seen.append(event.data["order_id"])


@pytest.fixture
def receivers(subscribe: Callable[..., Subscription]) -> Receivers:
    r = Receivers()
    subscribe("orders.order_placed", r.sync)
    subscribe("orders.order_placed", r.async_)
    return r


@pytest.mark.django_db(transaction=True)
def test_sync_view_publishes_to_sync_and_async_receivers(client: Any, receivers: Receivers) -> None:
    response = client.post("/orders", {"item": "pen"})
    assert response.status_code == 201
    order_id = response.json()["order_id"]
    assert receivers.sync_seen == [(order_id, 1)]
    assert receivers.async_seen == [order_id]
    assert receivers.sync_errors == []


@pytest.mark.django_db(transaction=True)
def test_the_events_page_draws_the_event_flow_as_svg_and_mermaid(
    client: Any, subscribe: Callable[..., Subscription]
) -> None:
    import html
    import xml.etree.ElementTree as ET

    from blinker_events.flow import to_mermaid

    def pack(event: Event) -> None:
        blinker_events.publish_sync(Event("orders.packed", {"order_id": event.data["order_id"]}, "packing"))

    subscribe("orders.order_placed", pack)
    blinker_events.clear_history()
    assert client.post("/orders", {"item": "pen"}).status_code == 201
    page = client.get("/events").content.decode()
    svg = ET.fromstring(page.split('<div id="flow">', 1)[1].split("</div>", 1)[0])
    ns = "{http://www.w3.org/2000/svg}"
    first = {g.get("id"): [t.text for t in g.iter(f"{ns}text")] for g in svg.iter(f"{ns}g")}
    edges = {(first[p.get("data-from")][0], first[p.get("data-to")][0]) for p in svg.iter(f"{ns}path")}
    assert {("orders.order_placed", "pack"), ("pack", "orders.packed")} <= edges
    (packed,) = (lines for lines in first.values() if lines[0] == "orders.packed")
    assert packed[:2] == ["orders.packed", "from 'packing'"]
    mermaid = html.unescape(page.split('<pre id="flow-mermaid">', 1)[1].split("</pre>", 1)[0])
    assert mermaid == to_mermaid(blinker_events.get_delivery_reports(), max_nodes=150)
    assert re.search(r"\n    n\d+ --> n\d+\[\"orders\.packed<br/>from 'packing'<br/>", mermaid)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_async_view_runs_orm_receivers_on_the_thread_sensitive_executor(
    async_client: Any, receivers: Receivers
) -> None:
    response = await async_client.post("/orders/async", {"item": "pen"})
    assert response.status_code == 201
    body = response.json()
    assert (body["delivered"], body["failed"], body["timed_out"]) == (2, 0, 0)
    assert receivers.sync_errors == []
    assert receivers.sync_seen == [(body["order_id"], 1)]
    assert receivers.async_seen == [body["order_id"]]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_async_view_shares_the_request_thread_with_sync_receivers(
    async_client: Any, subscribe: Callable[..., Subscription]
) -> None:
    """The sync receiver runs on the thread the request's sync code runs on."""
    threads: list[str] = []
    subscribe("orders.order_placed", lambda e: threads.append(threading.current_thread().name))
    subscribe("orders.order_saved", lambda e: threads.append(threading.current_thread().name))
    response = await async_client.post("/orders/async")
    assert response.status_code == 201
    # post_save ran in Order.objects.acreate's sync_to_async thread; the
    # receiver of `await publish` ran on that same thread-sensitive thread.
    assert len(threads) == 2
    assert threads[0] == threads[1]
    assert threads[0] != threading.current_thread().name


@pytest.fixture
def misbehaving(subscribe: Callable[..., Subscription]) -> Iterator[None]:
    """A raising sync receiver and a hung async one (cancelled at the 0.3 s timeout)."""

    def broken(event: Event) -> None:
        raise RuntimeError("receiver broke")

    async def hung(event: Event) -> None:
        await asyncio.sleep(5)

    subscribe("orders.order_placed", broken)
    subscribe("orders.order_placed", hung)
    with override_settings(BLINKER_EVENTS={**TEST_EVENTS, "TIMEOUT": 0.3}):
        yield


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("misbehaving")
def test_hung_and_raising_receivers_never_fail_a_sync_view(client: Any, receivers: Receivers) -> None:
    started = time.monotonic()
    response = client.post("/orders")
    assert response.status_code == 201
    assert time.monotonic() - started < 2.0
    report = blinker_events.get_delivery_reports("orders.order_placed")[-1]
    assert (len(report.succeeded), len(report.failed), len(report.timed_out)) == (2, 1, 1)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("misbehaving")
async def test_hung_and_raising_receivers_never_fail_an_async_view(async_client: Any, receivers: Receivers) -> None:
    started = time.monotonic()
    response = await async_client.post("/orders/async")
    assert response.status_code == 201
    assert time.monotonic() - started < 2.0
    body = response.json()
    assert (body["delivered"], body["failed"], body["timed_out"]) == (2, 1, 1)
    assert receivers.sync_seen == [(body["order_id"], 1)]


# -- the example under a real ASGI server --------------------------------------


def _request(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, data=b"item=lamp" if method == "POST" else None, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read().decode()


def test_example_project_under_uvicorn(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    port = free_port()
    env = {**os.environ, "BLINKER_EVENTS_EXAMPLE_DB": str(tmp_path / "db.sqlite3"), "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "examples.django_project", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, server, timeout=8)
        status, text = _request(f"http://127.0.0.1:{port}/orders/async", "POST")
        assert status == 201
        assert json.loads(text) == {"order_id": 1, "receipts": 1, "delivered": 2, "failed": 0, "timed_out": 0}
        status, text = _request(f"http://127.0.0.1:{port}/orders", "POST")
        assert (status, json.loads(text)) == (201, {"order_id": 2, "receipts": 1})
        status, page = _request(f"http://127.0.0.1:{port}/events")
        assert status == 200
        assert page.count("<td>orders.order_placed</td>") == 2
        assert page.count("<td>orders.order_saved</td>") == 2
    finally:
        server.terminate()
        try:
            server.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_overrunning_sync_receiver_of_an_async_view_is_timed_out_not_fatal(
    async_client: Any, subscribe: Callable[..., Subscription]
) -> None:
    """On the request's thread-sensitive thread a sync receiver is never
    interrupted: it counts as timed out, and the request succeeds."""
    release = threading.Event()
    subscribe("orders.order_placed", lambda e: release.wait(0.6))
    with override_settings(BLINKER_EVENTS={**TEST_EVENTS, "TIMEOUT": 0.2}):
        response = await async_client.post("/orders/async")
    release.set()
    assert response.status_code == 201
    body = response.json()
    assert (body["delivered"], body["failed"], body["timed_out"]) == (0, 0, 1)


@pytest.mark.asyncio
async def test_an_overrunning_receiver_on_the_request_thread_releases_await_publish_and_holds_the_thread(
    subscribe: Callable[..., Subscription],
) -> None:
    """What the Django guide (docs/django.md) says: ``await publish`` returns at
    the deadline, the overrunning receiver counted as timed out and the next
    one skipped as abandoned, while the receiver goes on on the request's
    thread -- so the request's next sync_to_async call waits for it."""
    from asgiref.sync import ThreadSensitiveContext, sync_to_async

    running_on: list[str] = []
    finished = threading.Event()

    def slow(event: Event) -> None:
        running_on.append(threading.current_thread().name)
        time.sleep(1.0)
        finished.set()

    slow_sub = subscribe("orders.slow", slow)
    next_sub = subscribe("orders.slow", lambda e: running_on.append("next"))
    async with ThreadSensitiveContext():  # what Django's ASGI handler opens for each request
        started = time.monotonic()
        report = await blinker_events.publish(Event("orders.slow"), timeout=0.3)
        released_after = time.monotonic() - started
        still_running = not finished.is_set()
        # The request's next sync code (an ORM call, say) runs on the same thread.
        thread, receiver_done = await sync_to_async(
            lambda: (threading.current_thread().name, finished.is_set()), thread_sensitive=True
        )()
        waited = time.monotonic() - started
    assert 0.3 <= released_after < 0.6
    assert still_running
    assert list(report.timed_out) == [slow_sub]
    assert list(report.skipped) == [(next_sub, "abandoned", None)]
    assert running_on == [thread]
    assert receiver_done
    assert waited >= 1.0


# -- database connections on the bus's threads ----------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for this module's connection tests."""
    server = PostgresServer(need_postgres())
    server.start()
    yield server
    server.stop()


def _burst(postgres: PostgresServer, conn_max_age: int) -> dict[str, Any]:
    """Run tests/django_pg_process.py against ``postgres``: its JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.django_pg_process", "--port", str(postgres.port)]
        + ["--conn-max-age", str(conn_max_age)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_receivers_on_bus_threads_leave_no_database_connection_open(postgres: PostgresServer) -> None:
    """CONN_MAX_AGE = 0 (Django's default): as at the end of a request, each
    delivery on a bus thread closes the connection it opened."""
    result = _burst(postgres, conn_max_age=0)
    assert (result["succeeded"], result["failed"]) == (60, [])
    assert result["threads"] > 1  # the concurrent publishes really used several pool threads
    assert (result["before"], result["after"]) == (0, 0)
    # ... and a connection the delivery did not open (a request's) is not its to close.
    assert result["request_connection_kept"] is True


def test_persistent_connections_on_bus_threads_are_reused_one_per_thread(postgres: PostgresServer) -> None:
    """CONN_MAX_AGE > 0: a bus thread keeps its connection for the next
    delivery, as a server thread does between requests: one per thread, no more."""
    result = _burst(postgres, conn_max_age=60)
    assert (result["succeeded"], result["failed"]) == (60, [])
    assert result["before"] == 0
    assert result["backends"] == result["threads"] == result["after"]


async def _post_then_disconnect(path: str, started: asyncio.Event) -> list[dict[str, Any]]:
    """POST ``path`` through Django's real ASGI handler; the client goes
    away once ``started`` is set. Returns what the handler sent back."""
    from django.core.handlers.asgi import ASGIHandler

    gone = asyncio.Event()
    sent: list[dict[str, Any]] = []
    body = [{"type": "http.request", "body": b"item=pen", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if body:
            return body.pop()
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded"), (b"host", b"testserver")],
    }
    request = asyncio.ensure_future(ASGIHandler()(scope, receive, send))
    await asyncio.wait_for(started.wait(), 5)
    gone.set()
    await asyncio.wait_for(request, 5)
    return sent


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_client_disconnecting_from_an_async_view_does_not_count_against_its_receivers(
    subscribe: Callable[..., Subscription],
) -> None:
    """Django's ASGI handler cancels the view when the client goes away: the
    receivers the publish was running are cancelled with it, not failed."""
    started = asyncio.Event()

    async def hung(event: Event) -> None:
        started.set()
        await asyncio.sleep(60)

    sub = subscribe("orders.order_placed", hung)
    for attempt in range(bus.failure_threshold + 1):
        started.clear()
        assert await _post_then_disconnect("/orders/async", started) == []  # cancelled: no response
        report = blinker_events.get_delivery_reports("orders.order_placed")[-1]
        assert list(report.cancelled) == [sub], attempt
        assert list(report.failed) == []
    assert (sub.failures, sub.disabled) == (0, False)
    assert len(blinker_events.get_delivery_reports("orders.order_placed")) == bus.failure_threshold + 1
