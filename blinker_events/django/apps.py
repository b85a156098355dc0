"""The app to put in ``INSTALLED_APPS``: ``"blinker_events.django"``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig  # type: ignore[import-untyped]
from django.core.signals import setting_changed  # type: ignore[import-untyped]

from ._settings import SETTING_NAME, apply_settings, autodiscover, current_settings


class BlinkerEventsConfig(AppConfig):  # type: ignore[misc]
    """Configures the default bus from ``settings.BLINKER_EVENTS`` at startup
    and on every change of it, then imports each app's events module."""

    name = "blinker_events.django"
    label = "blinker_events"
    verbose_name = "blinker events"

    def ready(self) -> None:
        config = apply_settings()
        setting_changed.connect(_setting_changed, dispatch_uid="blinker_events.django.setting_changed")
        autodiscover(config["AUTODISCOVER"])


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    """Reapply ``BLINKER_EVENTS`` when it changes: entering an override
    applies the new value, leaving it the previous one. A new
    ``AUTODISCOVER`` module name is discovered (modules already imported
    are not imported again)."""
    if setting == SETTING_NAME:
        config = apply_settings(current_settings())
        autodiscover(config["AUTODISCOVER"])
