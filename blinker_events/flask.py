"""Flask integration: the default bus (or one per app), configured from ``app.config``.

::

    from flask import Flask
    from blinker_events import Event, subscribe
    from blinker_events.flask import BlinkerEvents, current_events

    events = BlinkerEvents()


    @subscribe("order.created")  # on the default bus, which the app uses
    def send_receipt(event): ...


    def create_app(config=None):
        app = Flask(__name__)
        app.config.update(config or {})
        events.init_app(app)

        @app.post("/orders")
        def create_order():
            current_events.publish_sync(Event("order.created", {"id": 1}, "web"))
            return "", 201

        return app

What it does, per app, at :meth:`BlinkerEvents.init_app`:

- **The bus.** By default :data:`blinker_events.default_bus`, so the
  receivers subscribed with the module-level ``@subscribe`` get what views
  publish through ``current_events``. The first app initialised on it
  configures it from the ``BLINKER_EVENTS_*`` keys (see
  :data:`CONFIG_DEFAULTS`; unset keys take the defaults,
  ``BLINKER_EVENTS_PROPAGATE_EXCEPTIONS`` defaults to ``app.testing``);
  each later app sharing it must agree: a bus key it sets to another value
  is refused (ValueError naming the key), a key it leaves unset takes the
  bus as configured. When the last of them leaves (:meth:`BlinkerEvents.shutdown_app`)
  the default bus gets back the settings it had before. With
  ``BLINKER_EVENTS_OWN_BUS = True`` an app gets an
  :class:`~blinker_events.EventBus` of its own instead, named after the
  app and configured from its keys (tests, apps with different settings).
  A bus passed in (``BlinkerEvents(bus=...)``) is shared by every app the
  extension is initialised on and keeps its own settings: the config keys
  are not applied to it (only ``BLINKER_EVENTS_FLASK_SIGNALS``, which is
  per app). Every ``BLINKER_EVENTS_*`` key is checked: an unknown one (a
  typo) is refused naming it. The state lives in
  ``app.extensions["blinker_events"]`` (an :class:`AppState`); the
  extension object keeps no app.
- **Flask's own signals** named in ``BLINKER_EVENTS_FLASK_SIGNALS`` are
  bridged with ``bus.bridge(signal, f"flask.{name}", sender=app)``: each send
  by this app becomes an event of type ``"flask.<name>"`` (for example
  ``"flask.request_finished"``) whose ``source`` is the app and whose
  ``data`` holds the signal's keyword arguments (``data["response"]`` for
  ``request_finished``). Sends by other apps are not relayed, even on a
  shared bus.
- **The app context on the bus's threads.** Receivers run inline by
  ``publish_sync`` (and async receivers ``await publish`` runs on the view's
  loop) run inside the request, with ``request``, ``g`` and ``current_app``.
  Receivers the bus runs on its own threads -- everything behind
  ``publish_nowait``, the sync receivers of ``await publish``, the async
  receivers of ``publish_sync`` -- get a fresh app context pushed around
  their delivery of each event (``bus.set_dispatch_context``):
  ``current_app`` is the app that published (or, for events published
  outside any app context, the first app the bus was initialised on; on
  the default bus, the first of its apps not yet shut down), ``g``
  is a new, empty one, and the app's ``teardown_appcontext`` functions run
  afterwards. ``request`` still names the publisher's request (it travels
  with the publisher's context variables): fine while the view waits, but a
  ``publish_nowait`` receiver may run after the request ended -- put what it
  needs into ``event.data``. The context is installed on a bus the extension
  created, and on a passed-in bus that has no dispatch context yet; a
  passed-in bus's own dispatch context is kept.
- **Shutdown.** A bus of an app's own, and the default bus once an app
  configured it, is shut down when the process exits, after its queue
  drained for at most ``BLINKER_EVENTS_SHUTDOWN_TIMEOUT`` seconds (a
  passed-in bus is its owner's to shut down). Everything is per process: each
  process the reloader starts, and each gunicorn worker, has its own bus,
  threads and queue (see the README).
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
