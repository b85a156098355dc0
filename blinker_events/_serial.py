"""Serialisation checks, apart from the event model: what JSON-safe event
data is (:func:`json_safe`), and what a serialised event id and timestamp
must look like to be read back (:func:`valid_event_id`,
:func:`valid_timestamp`). Each refusal is a ValueError naming the path of
the offending value.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from math import isfinite
from typing import Any, TypeGuard

from ._describe import LIMIT, describe

__all__ = ["MAX_NESTING", "json_safe", "valid_event_id", "valid_timestamp"]

_MAX_ID_LENGTH = 200


def valid_event_id(value: object) -> TypeGuard[str]:
    if not isinstance(value, str) or len(value) > _MAX_ID_LENGTH:
        return False
    prefix, dash, counter = value.rpartition("-")
    return bool(prefix and dash and counter.isascii() and counter.isdigit())


#: Seconds since the epoch well inside what a datetime holds (years 1 to
#: 9999), which need no conversion to be known valid.
_SURELY_VALID = (-6.2e10, 2.5e11)


def valid_timestamp(value: float) -> bool:
    low, high = _SURELY_VALID
    if low < value < high:  # (false for nan)
        return True
    try:
        datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return False
    return math.isfinite(value)


#: 4,300 decimal digits (CPython's default limit) need more bits than this.
_BITS_WORTH_CHECKING = 14_000


def _shown(path: str) -> str:
    """``path`` for a message: keys are the application's, of any length."""
    return path if len(path) <= LIMIT else path[: LIMIT - 3] + "..."


#: How deeply ``to_dict`` data may nest; deeper is a ValueError, well before
#: Python's recursion limit (here, or in the json module that writes it).
MAX_NESTING = 200


def json_safe(value: Any, path: str, default: Callable[[Any], Any] | None) -> Any:
    """Check (and copy) ``value`` as JSON-safe data; see :meth:`~._events.Event.to_dict`.

    Data made of the plain builtin types alone -- what events carry almost
    always, and all that a JSON decoder gives -- is copied by
    :func:`_plain_copy`, which keeps no path and no set of ancestors. Anything
    else (a Mapping or str subclass, a value for ``default``, a value to
    refuse) makes it give up, and :func:`_checked_copy` walks the whole value
    again, naming the path of whatever it refuses: the same outcome either
    way, at the cost of one walk more in the rare case."""
    try:
        return _plain_copy(value, set())
    except _NotPlain:
        return _checked_copy(value, path, default, frozenset())


class _NotPlain(Exception):
    """Raised by :func:`_plain_copy` at the first value it does not take."""


def _plain_copy(value: Any, inside: set[int]) -> Any:
    """A copy of ``value`` made only of ``dict`` (str keys), ``list``
    (from lists and tuples), ``str``, ``bool``, ``None``, ints short enough
    to write and finite floats, nested fewer than MAX_NESTING containers
    deep; :class:`_NotPlain` at anything else. ``inside`` holds the ids of
    the containers on the way to ``value``: one met again is a cycle, left
    to the long way to name (without the check, a list holding itself twice
    would be walked 2**MAX_NESTING times before the depth stopped it)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if value.bit_length() > _BITS_WORTH_CHECKING:
            raise _NotPlain
        return value
    if kind is float:
        if not isfinite(value):
            raise _NotPlain
        return value
    if kind is not dict and kind is not list and kind is not tuple:
        raise _NotPlain
    key = id(value)
    if key in inside or len(inside) >= MAX_NESTING:
        raise _NotPlain
    inside.add(key)
    # One loop for both kinds (a list is gathered by index, then listed),
    # with the common scalars taken inline: a call per item would be most
    # of the cost. (An int of up to 64 bits is far inside the digit limit.)
    copy: dict[Any, Any] = {}
    for name, item in value.items() if kind is dict else enumerate(value):
        if kind is dict and type(name) is not str:
            raise _NotPlain
        kind_of_item = type(item)
        if (
            kind_of_item is str
            or item is None
            or kind_of_item is bool
            or (kind_of_item is int and item.bit_length() <= 64)
            or (kind_of_item is float and isfinite(item))
        ):
            copy[name] = item
        else:
            copy[name] = _plain_copy(item, inside)
    inside.discard(key)
    return copy if kind is dict else list(copy.values())


def _checked_copy(value: Any, path: str, default: Callable[[Any], Any] | None, ancestors: frozenset[int]) -> Any:
    """:func:`json_safe` the long way, for any value. ``ancestors`` holds the
    ids of the containers ``value`` sits in: meeting one again is a cycle
    (the same object twice side by side is not)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        # Past the interpreter's int-to-str digit limit json.dumps fails
        # (only such ints are long enough to be worth the check).
        if value.bit_length() > _BITS_WORTH_CHECKING:
            try:
                str(value)
            except ValueError:
                raise ValueError(
                    f"{_shown(path)}: an int of more than {sys.get_int_max_str_digits()} digits has no JSON form"
                ) from None
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{_shown(path)}: {value!r} has no JSON form")
        return value
    if isinstance(value, (Mapping, list, tuple)):
        if id(value) in ancestors:
            raise ValueError(f"{_shown(path)}: a cycle, this container holds itself")
        if len(ancestors) >= MAX_NESTING:
            raise ValueError(f"{_shown(path)}: nested deeper than {MAX_NESTING} levels")
        inner = ancestors | {id(value)}
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"{_shown(path)}: key {describe(key)} is not a string")
                out[key] = _checked_copy(item, f"{path}.{key}", default, inner)
            return out
        return [_checked_copy(item, f"{path}[{i}]", default, inner) for i, item in enumerate(value)]
    if default is not None:
        converted = default(value)
        try:  # the hook must give JSON, not pass the problem on
            json.dumps(converted, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            kind = type(converted).__name__
            raise ValueError(f"{_shown(path)}: default() gave {kind}, which is not JSON ({exc})") from None
        return converted
    raise ValueError(f"{_shown(path)}: {type(value).__name__} is not JSON-safe (pass default= to convert it)")
