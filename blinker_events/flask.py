"""Flask integration: one event bus per app, configured from ``app.config``.

::

    from flask import Flask
    from blinker_events import Event
    from blinker_events.flask import BlinkerEvents, current_events, get_bus

    events = BlinkerEvents()


    def create_app(config=None):
        app = Flask(__name__)
        app.config.update(config or {})
        events.init_app(app)
        get_bus(app).subscribe("order.created", send_receipt)

        @app.post("/orders")
        def create_order():
            current_events.publish_sync(Event("order.created", {"id": 1}, "web"))
            return "", 201

        return app

What it does, per app, at :meth:`BlinkerEvents.init_app`:

- **The bus.** Without a ``bus`` argument each app gets an
  :class:`~blinker_events.EventBus` of its own, named after the app and
  configured from the ``BLINKER_EVENTS_*`` keys (see :data:`CONFIG_DEFAULTS`;
  ``BLINKER_EVENTS_PROPAGATE_EXCEPTIONS`` defaults to ``app.testing``). A bus
  passed in (``BlinkerEvents(bus=...)``) is shared by every app the extension
  is initialised on and keeps its own settings: the config keys are not
  applied to it (only ``BLINKER_EVENTS_FLASK_SIGNALS``, which is per app).
  The state lives in ``app.extensions["blinker_events"]`` (an
  :class:`AppState`); the extension object keeps no app.
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
  outside any app context, the first app the bus was initialised on), ``g``
  is a new, empty one, and the app's ``teardown_appcontext`` functions run
  afterwards. ``request`` still names the publisher's request (it travels
  with the publisher's context variables): fine while the view waits, but a
  ``publish_nowait`` receiver may run after the request ended -- put what it
  needs into ``event.data``. The context is installed on a bus the extension
  created, and on a passed-in bus that has no dispatch context yet; a
  passed-in bus's own dispatch context is kept.
- **Shutdown.** A bus the extension created is shut down when the process
  exits, after its queue drained for at most ``BLINKER_EVENTS_SHUTDOWN_TIMEOUT``
  seconds (a passed-in bus is its owner's to shut down; the default bus
  already is, by :mod:`blinker_events`). Everything is per process: each
  process the reloader starts, and each gunicorn worker, has its own bus,
  threads and queue (see the README).
"""

from __future__ import annotations

import atexit
import logging
import weakref
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import flask.signals
from blinker import Signal
from flask import Flask, current_app, has_app_context
from werkzeug.local import LocalProxy

from ._bus import EventBus
from ._guards import check_timeout
from ._lifecycle import drain_at_exit

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

#: Every ``BLINKER_EVENTS_*`` config key and its default. A
#: ``BLINKER_EVENTS_PROPAGATE_EXCEPTIONS`` of None (or unset) means
#: ``app.testing``; any other value is used as is.
CONFIG_DEFAULTS: Mapping[str, Any] = {
    "BLINKER_EVENTS_TIMEOUT": None,
    "BLINKER_EVENTS_HISTORY_SIZE": 1000,
    "BLINKER_EVENTS_FAILURE_THRESHOLD": 3,
    "BLINKER_EVENTS_PROPAGATE_EXCEPTIONS": None,
    "BLINKER_EVENTS_QUEUE_SIZE": 10000,
    "BLINKER_EVENTS_OVERFLOW": "block",
    "BLINKER_EVENTS_MAX_DEPTH": 16,
    "BLINKER_EVENTS_SHUTDOWN_TIMEOUT": 10.0,
    "BLINKER_EVENTS_FLASK_SIGNALS": (),
}

#: The config keys that become :class:`EventBus` constructor arguments.
_BUS_ARGUMENTS = {
    "BLINKER_EVENTS_TIMEOUT": "timeout",
    "BLINKER_EVENTS_HISTORY_SIZE": "history_size",
    "BLINKER_EVENTS_FAILURE_THRESHOLD": "failure_threshold",
    "BLINKER_EVENTS_PROPAGATE_EXCEPTIONS": "propagate_exceptions",
    "BLINKER_EVENTS_QUEUE_SIZE": "queue_size",
    "BLINKER_EVENTS_OVERFLOW": "overflow",
    "BLINKER_EVENTS_MAX_DEPTH": "max_depth",
}

#: The names ``BLINKER_EVENTS_FLASK_SIGNALS`` accepts: every signal Flask
#: defines in :mod:`flask.signals`.
FLASK_SIGNALS: tuple[str, ...] = tuple(
    sorted(
        name for name, value in vars(flask.signals).items() if isinstance(value, Signal) and not name.startswith("_")
    )
)


def flask_event_type(signal_name: str) -> str:
    """The event type a bridged Flask signal is published as:
    ``"flask.request_finished"`` for ``"request_finished"``."""
    if signal_name not in FLASK_SIGNALS:
        raise ValueError(f"signal_name: unknown Flask signal {signal_name!r}; known: {', '.join(FLASK_SIGNALS)}")
    return f"flask.{signal_name}"


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

    ``bus``: one :class:`EventBus` for every app this extension is
    initialised on (it keeps its own settings), instead of a bus per app.
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

        Raises RuntimeError if ``app`` already has the extension (by this or
        another instance): a second call could not honour its own config or
        bus. Bad config values raise TypeError/ValueError naming the key,
        before anything changes.
        """
        if not isinstance(app, Flask):
            raise TypeError(f"app must be a Flask app, not {type(app).__name__}")
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(f"blinker_events is already initialised on app {app.name!r}")
        config = app.config
        signals = _flask_signals(config.get("BLINKER_EVENTS_FLASK_SIGNALS", ()))
        key = "BLINKER_EVENTS_SHUTDOWN_TIMEOUT"
        shutdown_timeout = check_timeout(config.get(key, CONFIG_DEFAULTS[key]), key)
        owns_bus = self._bus is None
        bus = _configured_bus(app) if self._bus is None else self._bus
        bridged: dict[str, str] = {}
        try:
            for name, signal in signals.items():
                bus.bridge(signal, flask_event_type(name), sender=app)
                bridged[name] = flask_event_type(name)
        except Exception:
            for name in bridged:
                bus.unbridge(signals[name], sender=app)
            raise
        if owns_bus or bus.dispatch_context is None:
            bus.set_dispatch_context(_AppContextFactory(app))
        if owns_bus:
            _EXIT_TIMEOUTS[bus] = shutdown_timeout
            drain_at_exit(bus, False)  # drained by _shutdown_at_exit, within the app's timeout
        app.extensions[EXTENSION_KEY] = AppState(self, bus, owns_bus, bridged)

    def shutdown_app(self, app: Flask, timeout: float | None = 10.0) -> int:
        """Unbridge ``app``'s Flask signals and, if the extension made its
        bus, shut the bus down (delivering what is queued, for at most
        ``timeout`` seconds). Returns how many queued events were dropped.

        For test suites and apps that end before their process does: Flask's
        signals are module globals, and a bridge keeps the bus (and, through
        its history, the app) alive. The app keeps its state and bus, which
        start their threads again if used.
        """
        state = _state(app)
        for name in state.bridged:
            state.bus.unbridge(getattr(flask.signals, name), sender=app)
        state.bridged = {}
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

    __slots__ = ("_fallback",)

    def __init__(self, app: Flask) -> None:
        # Weak: the bus must not keep the app alive (the app holds the bus).
        self._fallback = weakref.ref(app)

    def __call__(self) -> AbstractContextManager[Any]:
        app: Flask | None = None
        if has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        if app is None:
            app = self._fallback()
        return nullcontext() if app is None else app.app_context()

    def __repr__(self) -> str:
        app = self._fallback()
        return f"<blinker_events app context of the publishing app (default {app.name if app else None!r})>"


def _configured_bus(app: Flask) -> EventBus:
    """A new bus named after ``app``, with the ``BLINKER_EVENTS_*`` settings."""
    config = app.config
    kwargs: dict[str, Any] = {}
    for key, argument in _BUS_ARGUMENTS.items():
        value = config.get(key, CONFIG_DEFAULTS[key])
        if key == "BLINKER_EVENTS_PROPAGATE_EXCEPTIONS" and value is None:
            value = app.testing
        kwargs[argument] = value
    try:
        return EventBus(name=app.name, **kwargs)
    except (TypeError, ValueError) as exc:
        # Name the config key, not the constructor argument.
        text = str(exc)
        for key, argument in _BUS_ARGUMENTS.items():
            if text.startswith(f"{argument} "):
                raise type(exc)(f"{key}: {text}") from None
        raise


def _flask_signals(value: Any) -> dict[str, Signal]:
    key = "BLINKER_EVENTS_FLASK_SIGNALS"
    if value is None:
        return {}
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f"{key} must be a list of Flask signal names, not {type(value).__name__}")
    found: dict[str, Signal] = {}
    for name in value:
        if name not in FLASK_SIGNALS:
            raise ValueError(f"{key}: unknown Flask signal {name!r}; known: {', '.join(FLASK_SIGNALS)}")
        signal = getattr(flask.signals, name)
        assert isinstance(signal, Signal)
        found[name] = signal
    return found


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
