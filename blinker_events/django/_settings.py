"""``settings.BLINKER_EVENTS``: checked, then applied to the default bus."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from functools import partial
from importlib import import_module
from typing import Any

from django.apps import apps  # type: ignore[import-untyped]
from django.conf import settings  # type: ignore[import-untyped]
from django.db.models.signals import ModelSignal  # type: ignore[import-untyped]
from django.dispatch import Signal  # type: ignore[import-untyped]
from django.utils.module_loading import import_string, module_has_submodule  # type: ignore[import-untyped]

import blinker_events
from blinker_events import EventTypeLike, event_type_name
from blinker_events.lowlevel import (
    SETTING_NAMES,
    DefaultBusRelay,
    check_setting,
    default_of,
    reinit_locks,
    type_key,
)

from . import _connections

__all__ = ["DEFAULTS", "SETTING_NAME", "apply_settings", "autodiscover", "current_settings", "signal_event_type"]

logger = logging.getLogger("blinker_events")

#: The name of the settings dict.
SETTING_NAME = "BLINKER_EVENTS"

#: Every key of ``settings.BLINKER_EVENTS`` and the value used when it is
#: missing (or when the setting is unset). The bus's settings are their
#: names in upper case with the bus's defaults, derived from
#: :class:`~blinker_events.lowlevel.BusSettings`, except ``SYNC_EXECUTOR``:
#: ``"thread_sensitive"``, which Django's ORM needs. ``AUTODISCOVER``: the
#: module imported from every installed app, or False for none.
#: ``SIGNALS``: the Django signals bridged to the bus (see
#: :func:`apply_settings`).
DEFAULTS: Mapping[str, Any] = {
    **{setting.upper(): default_of(setting) for setting in SETTING_NAMES},
    "SYNC_EXECUTOR": "thread_sensitive",
    "AUTODISCOVER": "events",
    "SIGNALS": (),
}

_SIGNAL_KEYS = frozenset({"signal", "sender", "event_type"})
#: Where the names of signals given as objects (not dotted paths) are found.
_SIGNAL_MODULES = ("django.db.models.signals", "django.core.signals", "django.db.backends.signals")

_lock = threading.Lock()
# A gunicorn worker forked while a master thread applied settings must not
# inherit the lock held.
os.register_at_fork(after_in_child=lambda: reinit_locks(_lock))
#: What the last apply_settings connected: (signal, sender, dispatch_uid).
_connected: list[tuple[Signal, Any, str]] = []


def current_settings() -> Mapping[str, Any]:
    """``settings.BLINKER_EVENTS``, or an empty dict when unset or None."""
    value = getattr(settings, SETTING_NAME, None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{SETTING_NAME} must be a dict, not {type(value).__name__}")
    return value


def apply_settings(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Configure :data:`blinker_events.default_bus` from ``config`` (default:
    ``settings.BLINKER_EVENTS``); missing keys take their :data:`DEFAULTS`.

    Everything is checked first (TypeError/ValueError naming the key), then
    applied; the bus gets the database connection hygiene (see the
    Django page of the docs) as its dispatch context (around one it already
    had); the Django signals bridged by the previous call are
    disconnected and those of ``SIGNALS`` connected. Each ``SIGNALS`` entry
    is a dict: ``"signal"`` -- a ``django.dispatch.Signal`` or its dotted
    path (required); ``"sender"`` -- only sends by it are relayed: a model
    label ``"app_label.Model"``, a dotted path, an object, or None (the
    default) for every sender; ``"event_type"`` -- defaults to
    :func:`signal_event_type`. Returns the full, checked settings.

    :param config: a ``BLINKER_EVENTS``-style dict; None: the project's settings.
    :returns: every key with its value in force.
    :raises TypeError, ValueError: an unknown key or a bad value, naming the key.
    :raises LookupError: an unknown model label.
    """
    config = current_settings() if config is None else config
    resolved = _checked(config)
    bridges = [_resolve_bridge(entry, i) for i, entry in enumerate(resolved["SIGNALS"])]
    bus = blinker_events.default_bus
    with _lock:
        bus.configure(**{setting: resolved[setting.upper()] for setting in SETTING_NAMES})
        _connections.install(bus)
        for signal, sender, uid in _connected:
            signal.disconnect(sender=sender, dispatch_uid=uid)
        _connected.clear()
        for signal, sender, event_type in bridges:
            uid = f"blinker_events:{id(signal)}:{event_type_name(event_type)}"
            signal.connect(DefaultBusRelay(event_type), sender=sender, weak=False, dispatch_uid=uid)
            _connected.append((signal, sender, uid))
    return resolved


def _checked(config: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(config) - set(DEFAULTS), key=str)
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise ValueError(f"{SETTING_NAME}: unknown key(s) {names}; known: {', '.join(DEFAULTS)}")
    resolved = {**DEFAULTS, **config}
    # The bus's own settings are its keys in upper case, checked as the bus checks them.
    checks: dict[str, Callable[[Any, str], Any]] = {
        setting.upper(): partial(check_setting, setting) for setting in SETTING_NAMES
    }
    checks.update(AUTODISCOVER=_check_autodiscover, SIGNALS=_check_signals)
    for key, check in checks.items():
        try:
            resolved[key] = check(resolved[key], key)
        except (TypeError, ValueError) as exc:
            text = str(exc)
            raise type(exc)(text if text.startswith(key) else f"{SETTING_NAME}[{key!r}]: {text}") from None
    return resolved


def _check_autodiscover(value: Any, key: str) -> str | None:
    if value is None or value is False:
        return None
    if value is True:
        return str(DEFAULTS["AUTODISCOVER"])
    if not isinstance(value, str) or not value or not all(part.isidentifier() for part in value.split(".")):
        raise TypeError(f"{key} must be a module name or False, not {value!r}")
    return value


def _check_signals(value: Any, key: str) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{key} must be a list of dicts, not {type(value).__name__}")
    for i, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise TypeError(f"{key}[{i}] must be a dict, not {type(entry).__name__}")
        extra = set(entry) - _SIGNAL_KEYS
        if extra or "signal" not in entry:
            raise ValueError(f"{key}[{i}] needs a 'signal' and may have 'sender' and 'event_type'; got {sorted(entry)}")
    return tuple(value)


def _resolve_bridge(entry: Mapping[str, Any], i: int) -> tuple[Signal, Any, EventTypeLike]:
    where = f"{SETTING_NAME}['SIGNALS'][{i}]"
    signal = entry["signal"]
    try:
        if isinstance(signal, str):
            signal = import_string(signal)
        if not isinstance(signal, Signal):
            kind = type(signal).__name__
            raise TypeError(f"'signal' must be a django.dispatch.Signal or its dotted path, not {kind}")
        sender = _resolve_sender(signal, entry.get("sender"))
        event_type = entry.get("event_type")
        if event_type is None:
            event_type = signal_event_type(signal, sender)
        else:
            type_key(event_type)
    except ImportError as exc:
        raise ValueError(f"{where}: {exc}") from None
    except (TypeError, ValueError, LookupError) as exc:
        raise type(exc)(f"{where}: {exc}") from None
    return signal, sender, event_type


def _resolve_sender(signal: Signal, sender: Any) -> Any:
    if not isinstance(sender, str):
        return sender
    if sender.count(".") == 1 and (isinstance(signal, ModelSignal) or apps.is_installed(sender.split(".")[0])):
        try:
            return apps.get_model(sender)
        except LookupError:
            if isinstance(signal, ModelSignal):
                raise LookupError(f"'sender': no installed model {sender!r}") from None
    return import_string(sender)


def signal_event_type(signal: Signal, sender: Any = None) -> str:
    """The event type a bridged Django signal gets without ``event_type``:
    ``"<app_label>.<model_name>.<signal>"`` for a model sender (for example
    ``"orders.order.post_save"``), else ``"django.<signal>"`` (for example
    ``"django.request_finished"``). Signals that are not Django's own need an
    explicit event type.

    :param signal: a ``django.dispatch.Signal`` of Django's own.
    :param sender: the sender the relay is for, or None.
    :returns: the event type's name.
    :raises ValueError: ``signal`` is not one of Django's own.
    """
    name = _signal_name(signal)
    meta = getattr(sender, "_meta", None)
    if isinstance(sender, type) and meta is not None:
        return f"{meta.app_label}.{meta.model_name}.{name}"
    return f"django.{name}"


def _signal_name(signal: Signal) -> str:
    for module_name in _SIGNAL_MODULES:
        for name, value in vars(import_module(module_name)).items():
            if value is signal:
                return name
    raise ValueError("'event_type' is needed for a signal that is not one of Django's own")


def autodiscover(module: str | bool | None = "events") -> list[str]:
    """Import ``<app>.<module>`` of every installed app that has one and
    return their names. Python imports each module once, so calling this
    again subscribes nothing twice. ``module`` is read as the
    ``AUTODISCOVER`` setting is: None or False, nothing; True, the default
    ``"events"``.

    :param module: the module name to import from each app, True, False or None.
    :returns: the dotted names imported.
    :raises TypeError: ``module`` is none of these.
    """
    module = _check_autodiscover(module, "module")
    if module is None:
        return []
    found = []
    for app_config in apps.get_app_configs():
        if module_has_submodule(app_config.module, module):
            name = f"{app_config.name}.{module}"
            import_module(name)
            found.append(name)
    return found
