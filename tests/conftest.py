"""Shared fixtures: every test gets its own bus, and nothing outlives it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from enum import auto

import pytest

from blinker_events import EventBus, EventType

# The Flask integration's tests need the flask extra (the dev extra has it).
collect_ignore = [] if importlib.util.find_spec("flask") else ["test_flask.py"]


class Demo(EventType):
    """Event types for the tests (an EventType subclass, as the guide shows)."""

    PING = auto()
    PONG = auto()
    OTHER = auto()


@pytest.fixture
def bus() -> Iterator[EventBus]:
    """A fresh bus; shut down afterwards so no thread or queued event leaks."""
    bus = EventBus()
    yield bus
    assert bus.shutdown(timeout=10) == 0
