"""The wire format: one stream entry per event, and how it is checked.

An entry has four fields::

    v       b"1"            envelope version; anything else is refused
    origin  node id         the bridge that wrote it (never echoed back)
    type    readable name   for people reading the stream with redis-cli
    event   JSON            Event.to_dict(): id, type, source, timestamp,
                            parent id, data -- versioned on its own

and, written only by a bus that is instrumented (``lowlevel.instrument``:
:mod:`blinker_events.otel`), a fifth::

    trace   JSON object     the trace context of the publish, as its
                            tracer's propagator writes it (W3C
                            ``traceparent`` and ``tracestate``)

An entry without it is read as before, and a reader without
instrumentation passes it by; :func:`carrier` reads it bounded and never
raises, since it is data from another machine.

JSON only, never pickle: an entry is data from another machine, and reading
it must not be able to run code here. ``Event.from_dict`` finds event types
without importing anything by name.

With msgspec installed (the ``fast`` extra) its JSON encoder and decoder do
the work, several times faster than the json module; anything msgspec does
not take -- a ``str`` subclass in the data, an ``encoder`` hook's output,
``NaN`` or a lone surrogate in an entry another writer made -- goes through
the json module as without it, so both read and write the same JSON, and
accept and refuse the same entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from .. import Event, event_type_name
from ..lowlevel import DESCRIBE_LIMIT as LIMIT
from ..lowlevel import shown_name

__all__ = ["TRACE", "VERSION", "WireError", "add_carrier", "carrier", "decode", "encode"]

VERSION = b"1"
#: The optional field of the trace context.
TRACE = b"trace"
#: Bounds on what :func:`carrier` reads: W3C ``tracestate`` is at most 512
#: characters, ``traceparent`` 55.
_MAX_TRACE_BYTES = 2048
_MAX_TRACE_KEYS = 8

Fields = dict[bytes, bytes]

# One encoder for every entry: json.dumps with options builds a new one per call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode

try:
    import msgspec
except ImportError:  # the json module alone
    _fast_dumps: Callable[[Any], bytes] | None = None
    _fast_loads: Callable[[bytes], Any] | None = None
else:
    _fast_dumps = msgspec.json.Encoder().encode
    _fast_loads = msgspec.json.Decoder().decode


def _to_json(payload: dict[str, Any], converted: bool) -> bytes:
    """``payload`` (``Event.to_dict`` output) as JSON. ``converted``: an
    encoder hook took part, whose output follows the json module's rules."""
    if _fast_dumps is not None and not converted:
        try:
            return _fast_dumps(payload)
        except Exception:  # a str subclass, say: the json module decides
            pass
    return _dumps(payload).encode()


def _from_json(body: bytes) -> Any:
    if _fast_loads is not None:
        try:
            return _fast_loads(body)
        except Exception:  # what msgspec refuses, json may read (NaN, a BOM, ...) or refuse as before
            pass
    return json.loads(body)


class WireError(ValueError):
    """An entry that cannot become an event. ``reason`` is one of
    ``"version"``, ``"missing_field"``, ``"too_large"``,
    ``"malformed_json"``, ``"unknown_type"`` or ``"invalid_event"``.
    The detail is cut to ``describe``'s limit: it may quote wire data, and
    it goes into log lines."""

    def __init__(self, reason: str, detail: str) -> None:
        if len(detail) > LIMIT:
            detail = detail[: LIMIT - 3] + "..."
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def encode(event: Event, node: bytes, default: Callable[[Any], Any] | None, max_bytes: int) -> Fields:
    """The entry for ``event``. Raises ``ValueError`` -- at publish time, in
    the publisher's call -- for data JSON cannot carry (``default`` may
    convert it) and for an entry over ``max_bytes``."""
    try:
        payload = event.to_dict(default=default)
    except ValueError as exc:
        # to_dict's hint names its own argument; here the hook is ours.
        why = str(exc).replace("pass default=", "give the bridge an encoder=")
        raise ValueError(f"event {shown_name(event.event_type)} cannot cross to Redis: {why}") from None
    try:
        body = _to_json(payload, default is not None)
    except ValueError as exc:  # UnicodeEncodeError included
        why = _unencodable(payload["source"], "source") or _unencodable(payload["data"], "data") or str(exc)
        raise ValueError(f"event {shown_name(event.event_type)} cannot cross to Redis: {why}") from None
    if len(body) > max_bytes:
        raise ValueError(
            f"event {shown_name(event.event_type)} is {len(body)} bytes as JSON, over the bridge's "
            f"max_payload of {max_bytes}"
        )
    return {b"v": VERSION, b"origin": node, b"type": event_type_name(event.event_type).encode(), b"event": body}


def _unencodable(value: Any, path: str) -> str | None:
    """Where in JSON-safe ``value`` (``to_dict``'s) is what has no JSON text
    in UTF-8 -- a str with a lone surrogate -- and what, or None. Only called
    once encoding failed: json.dumps's own error names no field. (An int
    past Python's int-to-str digit limit is refused by ``to_dict`` itself.)"""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            return f"{path}: a str with a lone surrogate at position {exc.start}, which UTF-8 cannot carry"
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _unencodable(key, f"{path} (a key)") or _unencodable(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _unencodable(item, f"{path}[{i}]")
            if found:
                return found
    return None


def decode(fields: Mapping[bytes, bytes], max_bytes: int) -> Event:
    """The event in an entry, marked with its origin; ``WireError`` if the
    entry is not one this version wrote or its event is not valid here.

    Nothing else escapes: an entry is data from another machine, and
    whatever goes wrong with one (JSON nested past the recursion limit
    raises ``RecursionError``, say) must fail that entry, not its reader."""
    version = fields.get(b"v")
    if version != VERSION:
        raise WireError("version", f"envelope version {version!r}, this bridge reads {VERSION!r}")
    origin = fields.get(b"origin")
    body = fields.get(b"event")
    if not origin or body is None:
        raise WireError("missing_field", "an entry needs 'origin' and 'event'")
    if len(body) > max_bytes:
        raise WireError("too_large", f"event is {len(body)} bytes, over max_payload {max_bytes}")
    try:
        node = origin.decode()
        payload = _from_json(body)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError alike
        raise WireError("malformed_json", str(exc)) from None
    except RecursionError:
        raise WireError("malformed_json", "nested too deeply") from None
    try:
        return Event.from_dict(payload, origin=node)
    except (TypeError, ValueError) as exc:
        # from_dict names the field at fault; an unknown type is the one a
        # reader most needs told apart (a node running other code).
        reason = "unknown_type" if str(exc).startswith("event_type:") else "invalid_event"
        raise WireError(reason, str(exc)) from None
    except Exception as exc:  # RecursionError in deep data, or anything else
        raise WireError("invalid_event", f"{type(exc).__name__}: {exc}") from None


def add_carrier(fields: Fields, headers: Mapping[str, str]) -> None:
    """Put ``headers`` (a propagator's output) into the entry, if any."""
    if headers:
        fields[TRACE] = _dumps(dict(headers)).encode()


def carrier(fields: Mapping[bytes, bytes]) -> dict[str, str]:
    """The trace headers of an entry: empty if it has none, or if they are
    not a small JSON object of strings (never raises)."""
    raw = fields.get(TRACE)
    if not raw or len(raw) > _MAX_TRACE_BYTES:
        return {}
    try:
        found = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(found, dict) or len(found) > _MAX_TRACE_KEYS:
        return {}
    return {key: value for key, value in found.items() if isinstance(key, str) and isinstance(value, str)}
