"""Flask integration: the extension :class:`BlinkerEvents` gives each app a bus.

::

    events = BlinkerEvents()          # or BlinkerEvents(app)
    events.init_app(app)              # per app, in an app factory
    current_events.publish_sync(Event("order.created", {"id": 1}, "web"))

By default the app uses :data:`blinker_events.default_bus`, so receivers
subscribed with the module-level ``@subscribe`` get what its views publish
through :data:`current_events`; ``BLINKER_EVENTS_OWN_BUS = True`` gives an
app a bus of its own. The extension configures the bus from the
``BLINKER_EVENTS_*`` keys of ``app.config`` (:data:`CONFIG_DEFAULTS`),
bridges the Flask signals named in ``BLINKER_EVENTS_FLASK_SIGNALS``, pushes
an app context around the deliveries that run on the bus's threads, and
shuts the bus down when the process exits. Its state per app is an
:class:`AppState` in ``app.extensions["blinker_events"]``.

The guide -- configuration, what each receiver sees of the request and the
app context, tests, the reloader and gunicorn -- is the Flask page of the
documentation: https://blinker-events.readthedocs.io/en/latest/flask.html (``docs/flask.md``).
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import flask.signals
from blinker import Signal
from flask import Flask, current_app, has_app_context
from werkzeug.local import LocalProxy

import blinker_events
from blinker_events import EventBus
from blinker_events.lowlevel import check_flag, describe, drain_at_exit

from ._flask_config import (
    BUS_ARGUMENTS,
    CONFIG_DEFAULTS,
    FLASK_SIGNALS,
    OWN_BUS_KEY,
    SHARED_KEYS,
    SHUTDOWN_KEY,
    bus_settings,
    check_keys,
    flask_event_type,
    flask_signals,
)

__all__ = [
    "CONFIG_DEFAULTS",
    "EXTENSION_KEY",
    "FLASK_SIGNALS",
    "AppState",
    "BlinkerEvents",
    "current_events",
    "flask_event_type",
    "get_bus",
]

logger = logging.getLogger("blinker_events")

#: The key of the per-app state in ``app.extensions``.
EXTENSION_KEY = "blinker_events"


class AppState:
    """What the extension keeps for one app, in ``app.extensions["blinker_events"]``.

    ``bus`` is the app's bus; ``owns_bus`` tells whether the extension made
    it (and so configured it and shuts it down at exit); ``bridged`` maps
    each bridged Flask signal's name to its event type.
    """

    __slots__ = ("__weakref__", "bridged", "bus", "extension", "owns_bus")

    def __init__(self, extension: BlinkerEvents, bus: EventBus, owns_bus: bool, bridged: dict[str, str]) -> None:
        self.extension = extension
        self.bus = bus
        self.owns_bus = owns_bus
        self.bridged = bridged

    def __repr__(self) -> str:
        owner = "own" if self.owns_bus else "shared"
        return f"<blinker_events AppState: {owner} bus {self.bus.name!r}, bridged {sorted(self.bridged)}>"


class BlinkerEvents:
    """The Flask extension: ``BlinkerEvents(app)`` or, for app factories,
    ``events = BlinkerEvents()`` and ``events.init_app(app)`` per app.

    Without ``bus`` the apps use :data:`blinker_events.default_bus` (or,
    with ``BLINKER_EVENTS_OWN_BUS = True``, a bus of their own). ``bus``:
    one :class:`~blinker_events.EventBus` for every app this extension is initialised on
    instead; it keeps its own settings.
    """

    def __init__(self, app: Flask | None = None, bus: EventBus | None = None) -> None:
        if bus is not None and not isinstance(bus, EventBus):
            raise TypeError(f"bus must be an EventBus or None, not {type(bus).__name__}")
        self._bus = bus
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Give ``app`` its bus, bridge the configured Flask signals and
        install the app context for receivers on the bus's threads.

        The bus is the one passed to the constructor, else one of the app's
        own if ``BLINKER_EVENTS_OWN_BUS`` is true, else
        :data:`blinker_events.default_bus`, shared with the other apps on
        it (the first configures it; see the module's documentation).

        Raises RuntimeError if ``app`` already has the extension (by this or
        another instance): a second call could not honour its own config or
        bus. An unknown ``BLINKER_EVENTS_*`` key, a bad value, or a bus
        setting that conflicts with the default bus's (shared with other
        apps) raise TypeError/ValueError naming the key, before anything
        changes.

        :param app: a :class:`flask.Flask` app.
        :raises RuntimeError: the extension is already initialised on ``app``.
        :raises TypeError, ValueError: ``app`` is not a Flask app, or a bad or
            conflicting ``BLINKER_EVENTS_*`` key.
        """
        if not isinstance(app, Flask):
            raise TypeError(f"app must be a Flask app, not {type(app).__name__}")
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(f"blinker_events is already initialised on app {app.name!r}")
        config = app.config
        check_keys(config)
        signals = flask_signals(config.get("BLINKER_EVENTS_FLASK_SIGNALS", ()))
        settings = bus_settings(app)
        own = check_flag(config.get(OWN_BUS_KEY, False), OWN_BUS_KEY)
        if own and self._bus is not None:
            raise ValueError(f"{OWN_BUS_KEY}: app {app.name!r} asks for a bus of its own; this extension was given one")
        with _DEFAULT_LOCK:
            if self._bus is not None:
                bus = self._bus
            elif own:
                bus = EventBus(name=app.name, **{BUS_ARGUMENTS[key]: settings[key] for key in BUS_ARGUMENTS})
            else:
                bus = blinker_events.default_bus
                _check_agrees(app, settings)
            bridged = _bridge(bus, app, signals)
            if bus is blinker_events.default_bus and self._bus is None:
                _join_default_bus(app, settings)
            elif own or bus.dispatch_context is None:
                bus.set_dispatch_context(_AppContextFactory(app))
            if own:
                _EXIT_TIMEOUTS[bus] = settings[SHUTDOWN_KEY]
                drain_at_exit(bus, False)  # drained by _shutdown_at_exit, within the app's timeout
            app.extensions[EXTENSION_KEY] = AppState(self, bus, own, bridged)

    def shutdown_app(self, app: Flask, timeout: float | None = 10.0) -> int:
        """Unbridge ``app``'s Flask signals and, if the extension made its
        bus, shut the bus down (delivering what is queued, for at most
        ``timeout`` seconds). Returns how many queued events were dropped.

        On the default bus the app leaves the apps sharing it; the last one
        to leave gives the bus back the settings (and dispatch context) it
        had before the first one configured it. The default bus itself is not
        shut down (other code may use it; :mod:`blinker_events` does at exit).

        For test suites and apps that end before their process does: Flask's
        signals are module globals, and a bridge keeps the bus (and, through
        its history, the app) alive. The app keeps its state and bus, which
        start their threads again if used.

        :param app: an app this extension was initialised on.
        :param timeout: seconds the bus's shutdown may take; None: until drained.
        :returns: how many queued events were dropped (0 when the bus is not the extension's).
        :raises RuntimeError: the extension is not initialised on ``app``.
        """
        state = _state(app)
        for name in state.bridged:
            state.bus.unbridge(getattr(flask.signals, name), sender=app)
        state.bridged = {}
        if state.bus is blinker_events.default_bus and state.extension._bus is None:
            with _DEFAULT_LOCK:
                _leave_default_bus(app)
        if not state.owns_bus:
            return 0
        _EXIT_TIMEOUTS.pop(state.bus, None)
        drain_at_exit(state.bus, True)  # if used again, exit drains it as any bus
        return state.bus.shutdown(timeout)


def get_bus(app: Flask | None = None) -> EventBus:
    """The bus of ``app``, or of the current app when None.

    Raises RuntimeError outside an app context (without ``app``) or when the
    extension was not initialised on the app.

    :param app: a Flask app; None: the current one.
    :returns: its :class:`~blinker_events.EventBus`.
    :raises RuntimeError: no app and no app context, or no extension on the app.
    """
    if app is None:
        if not has_app_context():
            raise RuntimeError("blinker_events: no app given and working outside of application context")
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        assert isinstance(app, Flask)
    return _state(app).bus


#: The current app's bus, for views and code running in an app context:
#: ``current_events.publish_sync(event)``, ``await current_events.publish(event)``.
current_events: EventBus = LocalProxy(get_bus)  # type: ignore[assignment]


def _state(app: Flask) -> AppState:
    state = app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, AppState):
        raise RuntimeError(f"blinker_events is not initialised on app {app.name!r}: call BlinkerEvents.init_app(app)")
    return state


class _AppContextFactory:
    """The dispatch context: a fresh app context of the app that published
    (read from the publisher's context variables, which travel with the
    event), else of the app the bus was first initialised on."""

    __slots__ = ("fallback",)

    def __init__(self, app: Flask) -> None:
        # Weak: the bus must not keep the app alive (the app holds the bus).
        self.fallback = weakref.ref(app)

    def __call__(self) -> AbstractContextManager[Any]:
        app: Flask | None = None
        if has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        if app is None:
            app = self.fallback()
        return nullcontext() if app is None else app.app_context()

    def __repr__(self) -> str:
        app = self.fallback()
        return f"<blinker_events app context of the publishing app (default {app.name if app else None!r})>"


def _bridge(bus: EventBus, app: Flask, signals: dict[str, Signal]) -> dict[str, str]:
    """Bridge ``signals`` for sends by ``app``; all or none."""
    bridged: dict[str, str] = {}
    try:
        for name, signal in signals.items():
            bus.bridge(signal, flask_event_type(name), sender=app)
            bridged[name] = flask_event_type(name)
    except Exception:
        for name in bridged:
            bus.unbridge(signals[name], sender=app)
        raise
    return bridged


class _Shared:
    """The apps sharing the default bus (weakly, in the order they joined),
    the settings the first one configured it with, and what the bus had
    before, given back when the last one leaves."""

    __slots__ = ("apps", "before", "context_before", "settings")

    def __init__(self, bus: EventBus) -> None:
        self.apps: list[weakref.ref[Flask]] = []
        self.settings: dict[str, Any] = {}
        self.before = {argument: getattr(bus, argument) for argument in BUS_ARGUMENTS.values()}
        self.context_before = bus.dispatch_context

    def live(self) -> list[Flask]:
        return [app for app in (ref() for ref in self.apps) if app is not None]


#: OutcomeRecorder :data:`_shared`, the state of the apps on the default bus.
_DEFAULT_LOCK = threading.Lock()
_shared: _Shared | None = None


def _check_agrees(app: Flask, settings: Mapping[str, Any]) -> None:
    """A later app on the default bus may not silently run with settings
    other than those it asked for: each key it sets must match what the
    first (still live) app configured."""
    live = _shared.live() if _shared is not None else []
    if _shared is None or not live:
        return
    for key in SHARED_KEYS:
        if key in app.config and settings[key] != _shared.settings[key]:
            raise ValueError(
                f"{key}: app {app.name!r} sets {describe(settings[key])}, but the default bus it shares is "
                f"configured with {describe(_shared.settings[key])} by app {live[0].name!r}; set the same value, "
                f"or give this app a bus of its own ({OWN_BUS_KEY} = True)"
            )


def _join_default_bus(app: Flask, settings: Mapping[str, Any]) -> None:
    """Add ``app`` to the apps sharing the default bus. The first one (or
    the first after every earlier one is gone) configures the bus from its
    keys, its unset keys taking the defaults, as the Django app does."""
    global _shared
    bus = blinker_events.default_bus
    if _shared is None:
        _shared = _Shared(bus)
    if not _shared.live():
        _shared.apps.clear()
        _shared.settings = dict(settings)
        bus.configure(**{argument: settings[key] for key, argument in BUS_ARGUMENTS.items()})
        _EXIT_TIMEOUTS[bus] = settings[SHUTDOWN_KEY]
    _shared.apps.append(weakref.ref(app))
    _reset_dispatch_context(bus, _shared)


def _leave_default_bus(app: Flask) -> None:
    global _shared
    if _shared is None:
        return
    bus = blinker_events.default_bus
    _shared.apps = [ref for ref in _shared.apps if ref() not in (None, app)]
    if _shared.apps:
        _reset_dispatch_context(bus, _shared)
        return
    bus.configure(**_shared.before)
    if isinstance(bus.dispatch_context, _AppContextFactory):
        bus.set_dispatch_context(_shared.context_before)
    _EXIT_TIMEOUTS.pop(bus, None)
    _shared = None


def _reset_dispatch_context(bus: EventBus, shared: _Shared) -> None:
    """The app context for the default bus's threads falls back to the
    first live app; a dispatch context set by someone else is kept."""
    current = bus.dispatch_context
    if current is not None and not isinstance(current, _AppContextFactory):
        return
    first = shared.live()[0]
    if current is None or current.fallback() is not first:
        bus.set_dispatch_context(_AppContextFactory(first))


#: The buses the extension made, and how long each may drain at exit. Weak:
#: a bus whose app is gone is gone too.
_EXIT_TIMEOUTS: weakref.WeakKeyDictionary[EventBus, float | None] = weakref.WeakKeyDictionary()


def _shutdown_at_exit() -> None:
    for bus, timeout in list(_EXIT_TIMEOUTS.items()):
        try:
            bus.shutdown(timeout)
        except Exception:  # the other buses still get their turn
            logger.exception("blinker_events: shutting down bus %r at exit failed", bus.name)


atexit.register(_shutdown_at_exit)
