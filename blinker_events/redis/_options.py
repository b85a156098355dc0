"""The :class:`~blinker_events.redis.RedisBridge` constructor's arguments:
each checked (``TypeError``/``ValueError`` naming it, before anything
changes) and kept, normalised, in one frozen :class:`Options`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from blinker import Signal
from redis.asyncio.connection import parse_url

from .. import Event, EventBus, EventTypeLike, SystemEventType, TypedEvent
from ..lowlevel import TypeKey, check_positive_int, check_timeout, event_key, is_relayed, type_key
from ._connection import redact

__all__ = ["DEFAULT_URL", "DIRECTIONS", "MIN_CLAIM_IDLE", "MODES", "Options", "check_options", "listed"]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
MODES = ("broadcast", "group")
DIRECTIONS = ("both", "out", "in")
#: Below this, the group reader would spin looking for idle entries.
MIN_CLAIM_IDLE = 0.1

_UNPARSED_WITH_PASSWORD = (
    "redis-py cannot parse it (its reason is not shown: it may quote the password; "
    "a '/', '?' or '#' in a password must be %-escaped)"
)


def _password_after_semicolon(url: str) -> bool:
    # Decoded, as redis-py reads each "&"-separated value: ";" and "=" may be
    # written %-encoded.
    query = url.partition("?")[2].partition("#")[0]
    pieces = (piece for param in query.split("&") for piece in unquote_plus(param).split(";")[1:])
    return any("password" in piece.partition("=")[0].lower() for piece in pieces)  # (decoded once, as redis-py does)


@dataclass(frozen=True, slots=True)
class Options:
    """A bridge's checked settings (see ``RedisBridge`` for each)."""

    url: str
    stream: str
    mode: str
    direction: str
    group: str | None  # the bus's name by default in group mode; None in broadcast
    maxlen: int | None
    dead_letter_stream: str
    encoder: Callable[[Any], Any] | None
    max_payload: int
    claim_idle: float
    max_deliveries: int
    batch_size: int
    client_options: Mapping[str, Any]
    keys: frozenset[TypeKey] | None  # the event types carried; None: every type

    def carries(self, event: Event, bus: EventBus) -> bool:
        """(Publisher's thread.) Whether a local event goes out: none on an
        inbound-only bridge; else one of a listed type, or with no list any
        but the bus's own ``SystemEventType`` events, blinker signals used as
        types and types relayed from blinker signals (their data are Python
        objects)."""
        if self.direction == "in":
            return False
        if self.keys is not None:
            return listed(event, self.keys)
        if isinstance(event.event_type, (SystemEventType, Signal)):
            return False
        return not is_relayed(bus, event_key(event))

    def wanted(self, event: Event) -> bool:
        """(Reader.) Whether an incoming event is one of ours."""
        if self.keys is not None:
            return listed(event, self.keys)
        return not isinstance(event.event_type, SystemEventType)


def check_options(
    bus_name: str,
    url: str,
    *,
    stream: str,
    event_types: Iterable[EventTypeLike] | None,
    mode: str,
    group: str | None,
    consumer: str | None,
    maxlen: int | None,
    direction: str,
    node_id: str | None,
    encoder: Callable[[Any], Any] | None,
    max_payload: int,
    claim_idle: float,
    max_deliveries: int,
    dead_letter_stream: str | None,
    batch_size: int,
    client_options: Mapping[str, Any] | None,
) -> Options:
    """Check every argument, in the order of the signature; the bus's
    ``bus_name`` is the group's default name."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"url must be a redis://, rediss:// or unix:// URL, not {redact(url)}")
    try:
        parse_url(url)  # refused here, not at start()
    except ValueError as exc:
        # redis-py's reason may quote any part of the URL, the password
        # included (one with an unescaped "/" is read as the port), so it
        # is given only for a URL with nothing to hide.
        why = str(exc) if redact(url) == url else _UNPARSED_WITH_PASSWORD
        raise ValueError(f"url {redact(url)} is not valid: {why}") from None
    if _password_after_semicolon(url):
        # redis-py splits the query on "&" only: a password after a ";"
        # would go out as part of the value before it (and be quoted by
        # redis-py's errors about that value).
        raise ValueError(f"url {redact(url)} is not valid: its query gives a password after a ';' (use '&')")
    _check_name(stream, "stream")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    if mode == "broadcast" and (group is not None or consumer is not None):
        raise ValueError("group and consumer are for mode='group'")
    for value, name in ((group, "group"), (consumer, "consumer"), (node_id, "node_id")):
        if value is not None:
            _check_name(value, name)
    if dead_letter_stream is not None:
        _check_name(dead_letter_stream, "dead_letter_stream")
        if dead_letter_stream == stream:
            # Each dead letter would be read back as a new bad entry.
            raise ValueError("dead_letter_stream must not be the stream itself")
    if maxlen is not None:
        maxlen = check_positive_int(maxlen, "maxlen")
    if encoder is not None and not callable(encoder):
        raise TypeError(f"encoder must be callable or None, not {type(encoder).__name__}")
    claim = check_timeout(claim_idle, "claim_idle")
    if claim is None:
        raise TypeError("claim_idle must be a number of seconds, not None")
    if claim < MIN_CLAIM_IDLE:
        raise ValueError(f"claim_idle must be at least {MIN_CLAIM_IDLE} seconds, not {claim!r}")
    if client_options is not None and not isinstance(client_options, Mapping):
        raise TypeError(f"client_options must be a mapping, not {type(client_options).__name__}")
    socket_timeout = (client_options or {}).get("socket_timeout")
    if socket_timeout is not None and (not isinstance(socket_timeout, (int, float)) or socket_timeout < 2):
        # The readers block up to 1 s waiting for entries; a shorter socket
        # timeout would make every quiet second look like a lost Redis.
        raise ValueError(f"client_options: socket_timeout must be None or at least 2 seconds, not {socket_timeout!r}")
    return Options(
        url=url,
        stream=stream,
        mode=mode,
        direction=direction,
        group=(group or bus_name) if mode == "group" else None,
        maxlen=maxlen,
        dead_letter_stream=dead_letter_stream or f"{stream}:dead",
        encoder=encoder,
        max_payload=check_positive_int(max_payload, "max_payload"),
        claim_idle=claim,
        max_deliveries=check_positive_int(max_deliveries, "max_deliveries"),
        batch_size=check_positive_int(batch_size, "batch_size"),
        client_options=dict(client_options or {}),
        keys=None if event_types is None else _type_keys(event_types),
    )


def listed(event: Event, keys: frozenset[TypeKey]) -> bool:
    """Whether ``event`` is of a listed type: for a typed event, its class or
    any it derives from, as a receiver of a class receives its subclasses."""
    if event_key(event) in keys:
        return True
    return isinstance(event, TypedEvent) and any(id(cls) in keys for cls in type(event).__mro__)


def _check_name(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")


def _type_keys(event_types: Iterable[EventTypeLike]) -> frozenset[TypeKey]:
    if isinstance(event_types, (str, bytes)) or not isinstance(event_types, Iterable):
        raise TypeError("event_types must be a list of event types or None")
    keys = []
    for event_type in event_types:
        try:
            key = type_key(event_type)
        except TypeError as exc:
            raise TypeError(f"event_types: {exc}") from None
        if isinstance(event_type, Signal) and not isinstance(getattr(event_type, "name", None), str):
            raise ValueError("event_types: an unnamed blinker Signal has no name to cross the wire with")
        keys.append(key)
    if not keys:
        raise ValueError("event_types must not be empty (None carries every type)")
    return frozenset(keys)
