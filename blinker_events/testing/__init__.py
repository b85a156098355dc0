"""Test helpers, usable with any test runner: :func:`capture` records what a
bus published and asserts on it, :func:`isolated` gives a bus (the default
bus, typically) back the state it had, and :class:`ReceiverFailureWarning`
is what the pytest plugin (``blinker_events.testing.pytest_plugin``,
loaded by pytest through its ``pytest11`` entry point) warns with when
receivers failed without anyone noticing.

This package never imports pytest; only the plugin module does.
It is an integration: it uses the public API and :mod:`blinker_events.lowlevel`.
"""

from __future__ import annotations

from ._capture import Capture, ReceiverFailureWarning, capture
from ._isolation import Isolation, isolated

__all__ = ["Capture", "Isolation", "ReceiverFailureWarning", "capture", "isolated"]

for _public in (Capture, Isolation, ReceiverFailureWarning):
    _public.__module__ = "blinker_events.testing"
del _public
