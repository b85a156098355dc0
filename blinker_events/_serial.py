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
from typing import Any, TypeGuard

from ._describe import LIMIT, describe

__all__ = ["MAX_NESTING", "json_safe", "valid_event_id", "valid_timestamp"]

_MAX_ID_LENGTH = 200


def valid_event_id(value: object) -> TypeGuard[str]:
    if not isinstance(value, str) or len(value) > _MAX_ID_LENGTH:
        return False
    prefix, dash, counter = value.rpartition("-")
    return bool(prefix and dash and counter.isascii() and counter.isdigit())


def valid_timestamp(value: float) -> bool:
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


def json_safe(
    value: Any, path: str, default: Callable[[Any], Any] | None, ancestors: frozenset[int] = frozenset()
) -> Any:
    """Check (and copy) ``value`` as JSON-safe data; see :meth:`~._events.Event.to_dict`.
    ``ancestors`` holds the ids of the containers ``value`` sits in: meeting
    one again is a cycle (the same object twice side by side is not)."""
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
                out[key] = json_safe(item, f"{path}.{key}", default, inner)
            return out
        return [json_safe(item, f"{path}[{i}]", default, inner) for i, item in enumerate(value)]
    if default is not None:
        converted = default(value)
        try:  # the hook must give JSON, not pass the problem on
            json.dumps(converted, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            kind = type(converted).__name__
            raise ValueError(f"{_shown(path)}: default() gave {kind}, which is not JSON ({exc})") from None
        return converted
    raise ValueError(f"{_shown(path)}: {type(value).__name__} is not JSON-safe (pass default= to convert it)")
