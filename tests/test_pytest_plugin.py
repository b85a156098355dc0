"""The pytest plugin, run by pytester as a user's project would run it: no
conftest, the plugin found through the installed package's ``pytest11``
entry point. Passing and failing cases, failure messages checked."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest

pytest_plugins = ["pytester"]

FLAKY_FREE = ["-p", "no:cacheprovider", "-p", "no:randomly"]


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_user=textwrap.dedent(source))
    return pytester.runpytest_subprocess(*FLAKY_FREE, *args)


def test_the_plugin_loads_from_the_entry_point_with_no_conftest(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from blinker_events import EventBus, default_bus
        from blinker_events.testing import Capture

        def test_fixtures(event_bus, isolated_default_bus, event_capture):
            assert isinstance(event_bus, EventBus) and event_bus is not default_bus
            assert isolated_default_bus is default_bus
            assert isinstance(event_capture, Capture) and event_capture.bus is default_bus
        """,
        "--trace-config",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*blinker_events.testing.pytest_plugin*"])
    assert not list(pytester.path.glob("conftest.py"))


def test_event_bus_is_fresh_per_test_and_drained_after_it(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import time
        from blinker_events import Event

        DELIVERED = []
        BUSES = []

        def slow(event):
            time.sleep(0.1)
            DELIVERED.append(event.data["n"])

        def test_first(event_bus):
            BUSES.append(event_bus)
            event_bus.subscribe("tick", slow)
            event_bus.publish_nowait(Event("tick", {"n": 1}))

        def test_second(event_bus):
            assert DELIVERED == [1]  # the first test's teardown delivered it
            assert event_bus is not BUSES[0]
            assert event_bus.get_subscriber_count() == 0
        """,
    )
    result.assert_outcomes(passed=2)


def test_silent_receiver_failures_are_warned_of_at_teardown(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from blinker_events import Event

        def broken(event):
            raise ValueError("boom")

        def test_publishes(event_bus):
            event_bus.subscribe("order.placed", broken)
            event_bus.publish_sync(Event("order.placed", {"order_id": 1}))
        """,
    )
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*ReceiverFailureWarning: 1 receiver failure(s) on <EventBus 'event_bus'* were not raised to anyone:",
            "*test_user.broken handling Event(order.placed, {'order_id': 1}, id=*): ValueError: 'boom'",
        ]
    )


def test_silent_failures_fail_the_test_under_filterwarnings_error(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import time
        from blinker_events import Event

        def slow(event):
            time.sleep(0.5)

        def test_times_out(event_bus):
            event_bus.subscribe("tick", slow, timeout=0.05)
            event_bus.publish_nowait(Event("tick"))
        """,
        "-W",
        "error::blinker_events.testing.ReceiverFailureWarning",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_times_out*", "*test_user.slow handling*EventTimeoutError*"]
    )


def test_failures_raised_to_the_publisher_are_not_warned_of(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        from blinker_events import Event

        def broken(event):
            raise ValueError("boom")

        def test_propagating(event_bus):
            event_bus.set_propagate_exceptions(True)
            event_bus.subscribe("x", broken)
            with pytest.raises(ValueError):
                event_bus.publish_sync(Event("x"))
        """,
    )
    result.assert_outcomes(passed=1)
    assert "ReceiverFailureWarning" not in result.stdout.str()


def test_isolated_default_bus_keeps_import_time_subscriptions_and_undoes_the_tests(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        app=textwrap.dedent(
            """
            from blinker_events import Event, publish_sync, subscribe

            RECEIVED = []

            def on_order(event):
                RECEIVED.append(event.data["order_id"])

            subscribe("order.placed", on_order, source="app")

            def place_order(order_id):
                return publish_sync(Event("order.placed", {"order_id": order_id}))
            """
        )
    )
    result = run(
        pytester,
        """
        import app
        from blinker_events import Event

        def test_messes_with_the_default_bus(isolated_default_bus):
            assert isolated_default_bus.get_history() == []
            isolated_default_bus.subscribe("order.placed", lambda event: None)
            isolated_default_bus.unsubscribe_by_source("app")
            isolated_default_bus.set_timeout(0.01)
            isolated_default_bus.set_history_size(1)
            isolated_default_bus.publish_sync(Event("noise"))
            isolated_default_bus.publish_nowait(Event("order.placed", {"order_id": 0}))

        def test_finds_it_as_the_app_left_it(isolated_default_bus):
            assert isolated_default_bus.get_history() == []
            (sub,) = isolated_default_bus.get_subscriptions()
            assert sub.callback is app.on_order
            assert isolated_default_bus.timeout is None and isolated_default_bus.history_size == 1000
            app.RECEIVED.clear()
            app.place_order(42)
            assert app.RECEIVED == [42]
        """,
    )
    result.assert_outcomes(passed=2)


def test_isolated_default_bus_re_enables_what_the_test_left_disabled(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        from blinker_events import Event, default_bus, subscribe

        CALLS = []

        def flaky(event):
            CALLS.append(event.data["fail"])
            if event.data["fail"]:
                raise RuntimeError("down")

        SUB = subscribe("ping", flaky)

        @pytest.mark.filterwarnings("ignore::blinker_events.testing.ReceiverFailureWarning")
        def test_disables_it(isolated_default_bus):
            isolated_default_bus.set_failure_threshold(1)
            isolated_default_bus.publish_sync(Event("ping", {"fail": True}))
            assert SUB.disabled

        def test_finds_it_enabled(isolated_default_bus):
            assert not SUB.disabled and SUB.failures == 0
            isolated_default_bus.publish_sync(Event("ping", {"fail": False}))
            assert CALLS == [True, False]
        """,
    )
    result.assert_outcomes(passed=2)


def test_event_capture_assertions_pass_and_return_the_event(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from blinker_events import Event, publish, publish_nowait, publish_sync

        async def test_all_three_paths(event_capture):
            publish_sync(Event("order.placed", {"order_id": 42, "total": 9.5}))
            await publish(Event("order.paid", {"order_id": 42}))
            publish_nowait(Event("order.shipped", {"order_id": 42}))
            event = event_capture.assert_published("order.placed", order_id=42)
            assert event.data["total"] == 9.5
            event_capture.assert_published("order.paid")
            event_capture.wait_until_published("order.shipped", order_id=42, timeout=5)
            event_capture.assert_not_published("order.cancelled")
            event_capture.assert_not_published("order.placed", order_id=41)
        """,
        "-p",
        "asyncio",
        "-o",
        "asyncio_mode=auto",
    )
    result.assert_outcomes(passed=1)


def test_assert_published_failure_lists_what_was_published_instead(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from blinker_events import Event, publish_sync

        def test_wrong_order(event_capture):
            publish_sync(Event("order.placed", {"order_id": 41}))
            publish_sync(Event("cart.emptied"))
            event_capture.assert_published("order.placed", order_id=42)

        def test_nothing(event_capture):
            event_capture.assert_published("order.placed")
        """,
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: no order.placed event with order_id=42 was published on <EventBus *>;"
            " published instead (2):",
            "E*  Event(order.placed, {'order_id': 41}, id=*)",
            "E*  Event(cart.emptied, {}, id=*)",
            "*AssertionError: no order.placed event was published on <EventBus *>; nothing was published",
        ]
    )
    assert "_capture.py" not in result.stdout.str()  # the traceback ends at the test's line


def test_assert_not_published_failure_lists_the_matches(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from blinker_events import Event, publish_sync

        def test_unexpected(event_capture):
            publish_sync(Event("order.cancelled", {"order_id": 7}))
            publish_sync(Event("order.placed", {"order_id": 8}))
            event_capture.assert_not_published("order.cancelled")
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: expected no order.cancelled event on <EventBus *>, but 1 were published:",
            "E*  Event(order.cancelled, {'order_id': 7}, id=*)",
        ]
    )
    assert "order_id': 8" not in result.stdout.str()


def test_failure_messages_describe_hostile_data_safely(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from blinker_events import Event, publish_sync

        class Hostile:
            def __repr__(self):
                raise RuntimeError("no repr")
            def __eq__(self, other):
                raise RuntimeError("no eq")
            __hash__ = object.__hash__

        def test_hostile(event_capture):
            publish_sync(Event("x", {"h": Hostile(), "big": "y" * 100_000}))
            event_capture.assert_published("x", h=1)
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E*no x event with h=1 was published*published instead (1):", "E*Event(x, {*"])
    assert max(len(line) for line in result.outlines) < 2_000


needs_flask = pytest.mark.skipif(not importlib.util.find_spec("flask"), reason="needs the flask extra")


@needs_flask
def test_a_flask_app_tested_with_the_capture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        shop=textwrap.dedent(
            """
            from flask import Flask, request
            from blinker_events import Event
            from blinker_events.flask import BlinkerEvents, current_events

            events = BlinkerEvents()

            def create_app():
                app = Flask(__name__)
                events.init_app(app)

                @app.post("/orders")
                def place_order():
                    current_events.publish_sync(Event("order.placed", {"order_id": request.json["id"]}))
                    return {"ok": True}, 201

                return app
            """
        )
    )
    result = run(
        pytester,
        """
        import pytest
        from shop import create_app, events

        @pytest.fixture
        def client(isolated_default_bus):
            app = create_app()
            yield app.test_client()
            events.shutdown_app(app)

        def test_placing_an_order_publishes_it(client, event_capture):
            assert client.post("/orders", json={"id": 42}).status_code == 201
            event_capture.assert_published("order.placed", order_id=42)

        def test_a_wrong_id_fails_with_what_was_published(client, event_capture):
            client.post("/orders", json={"id": 1})
            event_capture.assert_published("order.placed", order_id=42)
        """,
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["E*no order.placed event with order_id=42*", "E*Event(order.placed, {'order_id': 1}*"])


needs_django = pytest.mark.skipif(
    not (importlib.util.find_spec("django") and importlib.util.find_spec("pytest_django")),
    reason="needs django and pytest-django",
)


@needs_django
def test_a_django_project_tested_with_the_capture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        settings=textwrap.dedent(
            """
            SECRET_KEY = "tests"
            INSTALLED_APPS = ["blinker_events.django"]
            DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
            ROOT_URLCONF = "urls"
            MIDDLEWARE = []
            BLINKER_EVENTS = {"AUTODISCOVER": False}
            """
        ),
        urls=textwrap.dedent(
            """
            from django.http import JsonResponse
            from django.urls import path
            from blinker_events import Event, publish_sync

            def place_order(request, order_id):
                publish_sync(Event("order.placed", {"order_id": order_id}))
                return JsonResponse({"ok": True}, status=201)

            urlpatterns = [path("orders/<int:order_id>", place_order)]
            """
        ),
    )
    result = run(
        pytester,
        """
        def test_placing_an_order_publishes_it(client, event_capture):
            assert client.post("/orders/42").status_code == 201
            event_capture.assert_published("order.placed", order_id=42)
            event_capture.assert_not_published("order.cancelled")
        """,
        "-p",
        "django",
        "--ds",
        "settings",
    )
    result.assert_outcomes(passed=1)


def test_an_error_whose_str_raises_is_still_reported(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from blinker_events import Event

        class Unprintable(Exception):
            def __str__(self):
                raise RuntimeError("no str")

        def broken(event):
            raise Unprintable()

        def test_publishes(event_bus):
            event_bus.subscribe("x", broken)
            event_bus.publish_sync(Event("x", {"big": "z" * 100_000}))
        """,
    )
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*broken handling Event(x, {'big': 'zzz*}, id=*): Unprintable: Unprintable()"])


def test_event_bus_keeps_no_event_alive_for_its_failure_watch(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import gc
        import weakref
        from blinker_events import Event

        class Component:
            pass

        def test_published_data_is_let_go(event_bus):
            event_bus.set_history_size(0)
            component = Component()
            ref = weakref.ref(component)
            event_bus.subscribe("x", lambda event: None)
            event_bus.publish_sync(Event("x", {"component": component}))
            del component
            gc.collect()
            assert ref() is None
        """,
    )
    result.assert_outcomes(passed=1)
