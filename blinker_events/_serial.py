"""Serialisation checks, apart from the event model: what JSON-safe event
data is (:func:`json_safe`), and what a serialised event id and timestamp
must look like to be read back (:func:`valid_event_id`,
:func:`valid_timestamp`). Each refusal is a ValueError naming the path of
the offending value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeGuard

from ._describe import describe

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


#: How deeply ``to_dict`` data may nest; deeper is a ValueError, well before
#: Python's recursion limit (here, or in the json module that writes it).
MAX_NESTING = 200


def json_safe(
    value: Any, path: str, default: Callable[[Any], Any] | None, ancestors: frozenset[int] = frozenset()
) -> Any:
    """Check (and copy) ``value`` as JSON-safe data; see :meth:`~._events.Event.to_dict`.
    ``ancestors`` holds the ids of the containers ``value`` sits in: meeting
    one again is a cycle (the same object twice side by side is not)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: {value!r} has no JSON form")
        return value
    if isinstance(value, (Mapping, list, tuple)):
        if id(value) in ancestors:
            raise ValueError(f"{path}: a cycle, this container holds itself")
        if len(ancestors) >= MAX_NESTING:
            raise ValueError(f"{path}: nested deeper than {MAX_NESTING} levels")
        inner = ancestors | {id(value)}
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"{path}: key {describe(key)} is not a string")
                out[key] = json_safe(item, f"{path}.{key}", default, inner)
            return out
        return [json_safe(item, f"{path}[{i}]", default, inner) for i, item in enumerate(value)]
    if default is not None:
        converted = default(value)
        try:  # the hook must give JSON, not pass the problem on
            json.dumps(converted, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"{path}: default() gave {type(converted).__name__}, which is not JSON ({exc})") from None
        return converted
    raise ValueError(f"{path}: {type(value).__name__} is not JSON-safe (pass default= to convert it)")
