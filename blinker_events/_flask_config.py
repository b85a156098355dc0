"""The Flask extension's ``app.config`` keys: their defaults and checks.

The keys of the bus's own settings are derived from
:class:`~blinker_events.lowlevel.BusSettings` -- name, default and check
-- so they cannot drift from what a bus accepts. Every check names the
config key and runs before :meth:`BlinkerEvents.init_app
<blinker_events.flask.BlinkerEvents.init_app>` changes anything.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import flask.signals
from blinker import Signal
from flask import Flask

from blinker_events.lowlevel import SETTING_NAMES, check_setting, check_timeout, default_of, describe

__all__ = [
    "BUS_ARGUMENTS",
    "CONFIG_DEFAULTS",
    "FLASK_SIGNALS",
    "OWN_BUS_KEY",
    "SHARED_KEYS",
    "SHUTDOWN_KEY",
    "bus_settings",
    "check_keys",
    "flask_event_type",
    "flask_signals",
]

KEY_PREFIX = "BLINKER_EVENTS_"
SHUTDOWN_KEY = "BLINKER_EVENTS_SHUTDOWN_TIMEOUT"
OWN_BUS_KEY = "BLINKER_EVENTS_OWN_BUS"
PROPAGATE_KEY = "BLINKER_EVENTS_PROPAGATE_EXCEPTIONS"

#: The config keys that become :class:`EventBus` constructor arguments:
#: ``BLINKER_EVENTS_`` and the setting's name in upper case, for every bus
#: setting but ``sync_executor`` (a Flask app's receivers have no
#: thread-sensitive code to serialise, as Django's ORM has).
BUS_ARGUMENTS: Mapping[str, str] = {
    f"{KEY_PREFIX}{setting.upper()}": setting for setting in SETTING_NAMES if setting != "sync_executor"
}

#: Every ``BLINKER_EVENTS_*`` config key and its default: the bus's own
#: default for its settings, except that a
#: ``BLINKER_EVENTS_PROPAGATE_EXCEPTIONS`` of None (or unset) means
#: ``app.testing``; any other value is used as is.
CONFIG_DEFAULTS: Mapping[str, Any] = {
    **{key: default_of(setting) for key, setting in BUS_ARGUMENTS.items()},
    PROPAGATE_KEY: None,
    SHUTDOWN_KEY: 10.0,
    "BLINKER_EVENTS_FLASK_SIGNALS": (),
    OWN_BUS_KEY: False,
}
#: The keys apps sharing the default bus must agree on.
SHARED_KEYS = (*BUS_ARGUMENTS, SHUTDOWN_KEY)

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


def check_keys(config: Mapping[str, Any]) -> None:
    """Refuse a ``BLINKER_EVENTS_*`` key the extension does not know: a
    misspelt key would otherwise be ignored, silently. So is a bare
    ``BLINKER_EVENTS`` (the Django app's settings dict, which Flask does not
    read)."""
    ours = sorted(k for k in config if isinstance(k, str) and (k.startswith(KEY_PREFIX) or k == KEY_PREFIX[:-1]))
    for key in ours:
        if key not in CONFIG_DEFAULTS:
            if key == KEY_PREFIX[:-1]:
                hint = "the Flask extension reads one key per setting, not a dict; "
            else:
                close = difflib.get_close_matches(key, CONFIG_DEFAULTS, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
            raise ValueError(f"{key}: unknown config key; {hint}known: {', '.join(CONFIG_DEFAULTS)}")


def bus_settings(app: Flask) -> dict[str, Any]:
    """The app's bus settings and shutdown timeout by config key, each
    checked (errors name the key) and defaulted."""
    config = app.config
    settings: dict[str, Any] = {}
    for key, argument in BUS_ARGUMENTS.items():
        value = config.get(key, CONFIG_DEFAULTS[key])
        if key == PROPAGATE_KEY and value is None:
            value = app.testing
        try:
            settings[key] = check_setting(argument, value, key)
        except (TypeError, ValueError) as exc:
            text = str(exc)
            raise type(exc)(text if text.startswith(key) else f"{key}: {text}") from None
    settings[SHUTDOWN_KEY] = check_timeout(config.get(SHUTDOWN_KEY, CONFIG_DEFAULTS[SHUTDOWN_KEY]), SHUTDOWN_KEY)
    return settings


def flask_signals(value: Any) -> dict[str, Signal]:
    """``BLINKER_EVENTS_FLASK_SIGNALS`` (a list of names, or None) as the
    :mod:`flask.signals` they name."""
    key = "BLINKER_EVENTS_FLASK_SIGNALS"
    if value is None:
        return {}
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f"{key} must be a list of Flask signal names, not {type(value).__name__}")
    found: dict[str, Signal] = {}
    for name in value:
        if name not in FLASK_SIGNALS:
            raise ValueError(f"{key}: unknown Flask signal {describe(name)}; known: {', '.join(FLASK_SIGNALS)}")
        signal = getattr(flask.signals, name)
        assert isinstance(signal, Signal)
        found[name] = signal
    return found
