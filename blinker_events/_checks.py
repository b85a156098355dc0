"""Argument checks: what a valid call is.

Each check runs at call time and raises (TypeError for the wrong kind of
value, ValueError for a value out of range) before any state changes,
naming the argument it rejects. A subclass of ``int``, ``float`` or ``str``
is judged by its value, never by its own comparisons or conversions, and
the checked value comes back as the plain built-in type: an argument
cannot change its mind after it was checked.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from ._describe import describe

__all__ = [
    "MAX_COUNT",
    "MAX_TIMEOUT",
    "OVERFLOW_POLICIES",
    "SYNC_EXECUTORS",
    "check_flag",
    "check_overflow",
    "check_positive_int",
    "check_sync_executor",
    "check_timeout",
]

OVERFLOW_POLICIES = ("block", "raise", "drop_oldest")
SYNC_EXECUTORS = ("worker", "thread_sensitive")


#: The longest timeout accepted, in seconds: half of what a thread can wait
#: (``threading.TIMEOUT_MAX``, about 292 years on Linux, 49 days on
#: Windows), so a deadline computed from it and waited for later -- after
#: adding and subtracting clock readings -- still fits.
MAX_TIMEOUT = threading.TIMEOUT_MAX / 2
#: The largest count accepted: what a deque's ``maxlen`` (the history) holds.
MAX_COUNT = sys.maxsize


def check_timeout(value: Any, name: str = "timeout") -> float | None:
    """A timeout is None (no timeout) or a positive number of seconds up to
    :data:`MAX_TIMEOUT`. An ``int``/``float`` subclass is judged by its
    value, never by its own comparisons; the result is a plain ``float``.

    :param value: what the caller passed.
    :param name: the argument's name, for the error message.
    :returns: None or a plain ``float``.
    :raises TypeError: not a number (a bool included) or None.
    :raises ValueError: not positive, NaN, or above :data:`MAX_TIMEOUT`.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    # Compared exactly before any conversion: an int too large for a float
    # is refused here, not an OverflowError from float().
    plain = int.__int__(value) if isinstance(value, int) else float.__float__(value)
    if not 0 < plain <= MAX_TIMEOUT:  # False for nan too
        raise ValueError(
            f"{name} must be a positive number of seconds up to {MAX_TIMEOUT:.0f}, not {_number_text(plain)}"
        )
    return float(plain)


def check_flag(value: Any, name: str) -> bool:
    """``value`` if it is a bool; else TypeError naming ``name``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer from ``minimum`` to :data:`MAX_COUNT`, as a plain ``int``
    (an ``int`` subclass is judged by its value).

    :param value: what the caller passed.
    :param name: the argument's name, for the error message.
    :param minimum: the smallest value accepted.
    :returns: a plain ``int``.
    :raises TypeError: not an int (a bool included).
    :raises ValueError: below ``minimum`` or above :data:`MAX_COUNT`.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    plain = int.__int__(value)
    if plain < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {_number_text(plain)}")
    if plain > MAX_COUNT:
        raise ValueError(f"{name} must be at most {MAX_COUNT}, not {_number_text(plain)}")
    return plain


def _number_text(value: float) -> str:
    # An int past 64 bits is described by its size: its repr may be
    # megabytes long, or refused (Python's limit on int digits).
    if isinstance(value, int) and value.bit_length() > 64:
        return f"{'a negative' if value < 0 else 'an'} integer of {value.bit_length()} bits"
    return repr(value)


def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    # A str subclass is judged by its value: its own __eq__ and __str__ are
    # never asked, and a plain str is kept.
    plain = str.__str__(value) if isinstance(value, str) else value
    if not isinstance(plain, str) or plain not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, not {describe(plain)}")
    return plain


def check_overflow(value: Any, name: str = "overflow") -> str:
    return _check_choice(value, name, OVERFLOW_POLICIES)


def check_sync_executor(value: Any, name: str = "sync_executor") -> str:
    return _check_choice(value, name, SYNC_EXECUTORS)
