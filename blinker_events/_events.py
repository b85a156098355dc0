"""The event model: the immutable :class:`Event`, and how it turns into a
JSON-safe dictionary and back (the checks of what JSON-safe data is are
:mod:`._serial`'s; event types and their names are :mod:`._types`').
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import Enum
from time import time
from types import MappingProxyType
from typing import Any, Self, TypeAlias

from blinker import Signal

from ._context import get_handling
from ._describe import describe
from ._serial import json_safe, valid_event_id, valid_timestamp
from ._types import CLASS_KINDS, KEYED_BY_ID, TYPE_REGISTRY, TypeKey, event_type_name, shown_name, type_key

__all__ = ["Event", "EventTypeLike", "PlainEventType"]

EventTypeLike: TypeAlias = "Enum | str | Signal | type[Event]"
#: The event types that are not classes (``subscribe`` types receivers of a
#: typed event class by that class; these get ``Callable[..., Any]``).
PlainEventType: TypeAlias = "Enum | str | Signal"


# -- event ids ---------------------------------------------------------------
#
# An id is a random per-process prefix and a counter: unique across processes
# and hosts, and far cheaper than uuid4 per event. The prefix is drawn again
# in a forked child, or gunicorn workers would hand out the same ids.

_id_prefix = os.urandom(6).hex()
_id_counter = itertools.count(1)


def _new_id_space() -> None:
    global _id_prefix, _id_counter
    _id_prefix = os.urandom(6).hex()
    _id_counter = itertools.count(1)


os.register_at_fork(after_in_child=_new_id_space)

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_DICT_VERSION = 1


class Event:
    """One occurrence of an event type. Immutable.

    ``Event(event_type, data=None, source=None)``: ``data`` is copied into a
    read-only mapping (``{}`` when None); ``source`` is whoever publishes it.
    ``event_id`` is unique across processes, ``timestamp`` is an aware UTC
    datetime taken at creation, and ``parent_id`` is the ``event_id`` of the
    event whose receiver was running when this one was created (None at top
    level) -- the causal link the cycle guard and the history show.

    :param event_type: an :data:`EventTypeLike`.
    :param data: a mapping with string keys, or None.
    :param source: any object: who publishes the event.
    :raises TypeError: a bad ``event_type``, or ``data`` that is not a mapping.
    """

    __slots__ = (
        "_by",
        "_data",
        "_event_type",
        "_key",
        "_origin",
        "_parent_id",
        "_prefix",
        "_seq",
        "_source",
        "_ts",
        "_view",
    )

    _event_type: EventTypeLike
    _key: TypeKey
    #: The event's own copy of the data, never handed out: receivers get it
    #: through ``data`` (a read-only view), plain receivers as ``**kwargs``.
    _data: Mapping[str, Any]
    #: The read-only view of ``_data``, made on first use of ``data``: a
    #: ``MappingProxyType(...)`` call costs ~740 instructions on 3.11 (it has
    #: no vectorcall and parses its arguments), a third of what making the
    #: rest of an event costs, and a publish whose receivers never read
    #: ``event.data`` (plain receivers, the history) should not pay it.
    _view: Mapping[str, Any] | None
    _source: Any
    _prefix: str  # an event read by from_dict keeps its id here whole
    _seq: int | None  # and has no sequence number of ours
    _ts: float
    _parent_id: str | None
    #: The id of the subscription whose receiver made this event; set only
    #: then (unset at top level, and on an event read by from_dict), so a
    #: top-level event pays nothing for it. Read by ``lowlevel.published_by``.
    _by: int
    _origin: str | None  # the node a bridge received it from; None if made here

    def __init__(self, event_type: EventTypeLike, data: Mapping[str, Any] | None = None, source: Any = None) -> None:
        # An Event is made on every publish, so the common cases come first
        # and the general checks (isinstance against ABCs) only run for rare
        # types: ``type_key`` remembers every Enum/Signal class it accepted.
        kind = type(event_type)
        if kind is str:
            self._key = event_type  # type: ignore[assignment]
        elif kind in KEYED_BY_ID:
            self._key = id(event_type)
        else:
            self._key = type_key(event_type)
            if kind in CLASS_KINDS and type(self) is not event_type:
                # A receiver of the class is typed to get its instances.
                raise TypeError(f"event_type: publish {event_type_name(event_type)}(...) itself, not Event(...) of it")
        if data is None:
            self._data = self._view = _EMPTY
        elif type(data) is dict:
            self._data = data.copy()
            self._view = None
        elif isinstance(data, Mapping):
            self._data = dict(data)
            self._view = None
        else:
            raise TypeError(f"data must be a mapping or None, not {type(data).__name__}")
        self._event_type = event_type
        self._source = source
        self._prefix = _id_prefix
        self._seq = next(_id_counter)
        self._ts = time()
        handling = get_handling()  # pre-bound: see _context
        if handling is None:
            self._parent_id = None
        else:  # the running receiver is last in the chain
            self._parent_id = handling[0].event_id
            self._by = handling[1][-1].id
        self._origin = None

    @property
    def event_type(self) -> EventTypeLike:
        """The event's type (for a typed event, its class)."""
        return self._event_type

    @property
    def data(self) -> Mapping[str, Any]:
        """A read-only mapping of the event's own copy of its data."""
        view = self._view
        if view is None:
            # Two threads racing here make two equal read-only views of the
            # same copy; either is correct, one is kept.
            view = self._view = MappingProxyType(self._data)
        return view

    @property
    def source(self) -> Any:
        """Whoever published it (``sender=`` of ``subscribe`` filters on it); None if not given."""
        return self._source

    @property
    def event_id(self) -> str:
        """A string unique across processes and hosts."""
        return self._prefix if self._seq is None else f"{self._prefix}-{self._seq}"

    @property
    def timestamp(self) -> datetime:
        """When the event was made, as an aware UTC datetime."""
        return datetime.fromtimestamp(self._ts, UTC)

    @property
    def parent_id(self) -> str | None:
        """The ``event_id`` of the event whose receiver made this one, or None."""
        return self._parent_id

    @property
    def origin(self) -> str | None:
        """The node id of the process that published this event, for an event
        a bridge received from another process (see ``blinker_events.redis``);
        None for an event published here. Bridges never forward an event
        whose origin is set, which is what keeps them from echoing."""
        return self._origin

    @property
    def is_remote(self) -> bool:
        """True for an event that arrived through a bridge."""
        return self._origin is not None

    def __repr__(self) -> str:
        # Data and source are the application's objects: described, never
        # trusted (their __repr__ may raise or be huge), because the bus logs
        # events on threads where an exception would kill a guarantee.
        source = "" if self._source is None else f", source={describe(self._source)}"
        return f"Event({shown_name(self._event_type)}, {describe(dict(self._data))}{source}, id={self.event_id!r})"

    # -- serialisation -------------------------------------------------------

    def to_dict(self, *, default: Callable[[Any], Any] | None = None) -> dict[str, Any]:
        """Return this event as a dictionary of JSON-safe values.

        ``data`` and ``source`` must consist of ``dict`` (string keys),
        ``list``/``tuple``, ``str``, ``int``, finite ``float``, ``bool`` and
        ``None``; anything else goes through ``default`` (like
        :func:`json.dumps`), and without one raises ``ValueError`` naming the
        offending path, as is data that holds itself (a cycle) or nests
        deeper than 200 levels. Tuples come back as lists.

        :param default: converts a value JSON cannot hold, as :func:`json.dumps`'s ``default``.
        :returns: a dict of JSON-safe values.
        :raises ValueError: a value that cannot be written, naming its path.
        """
        # Writing a type out makes it readable back in this process, even if
        # no bus here has a signal for it (say, only catch-alls listen).
        TYPE_REGISTRY.remember(self._event_type)
        return {
            "version": _DICT_VERSION,
            "event_type": TYPE_REGISTRY.describe(self._event_type),
            "event_id": self.event_id,
            "parent_id": self._parent_id,
            "timestamp": self._ts,
            "source": json_safe(self._source, "source", default),
            "data": json_safe(dict(self._data), "data", default),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any], *, origin: str | None = None) -> Self:
        """Rebuild an event from :meth:`to_dict` output, keeping its id,
        timestamp and parent. The event type must be known to this process
        (see :func:`event_type_name`); ``ValueError`` otherwise. ``origin``
        marks it as received from that node (see :attr:`origin`). An event
        of a typed event class comes back as an instance of that class, its
        fields checked as when made; called on a class, it refuses a payload
        of any other event type.

        :param payload: what :meth:`to_dict` returned (after a JSON round trip, say).
        :param origin: the node id it came from; None: made here.
        :returns: the event (an instance of its typed event class, if it has one).
        :raises TypeError: ``payload`` is not a mapping, or a bad ``origin``.
        :raises ValueError: a malformed payload, an unknown event type, or a
            field its class refuses, naming the field.
        """
        if origin is not None and (not isinstance(origin, str) or not origin):
            raise TypeError("origin must be a non-empty str or None")
        # (type() first: what a JSON decoder gives is a dict, and an ABC's
        # isinstance costs ten times the identity check.)
        if type(payload) is not dict and not isinstance(payload, Mapping):
            raise TypeError(f"payload must be a mapping, not {type(payload).__name__}")
        if payload.get("version") != _DICT_VERSION:
            raise ValueError(f"payload: unsupported version {describe(payload.get('version'))}")
        spec = payload.get("event_type")
        if type(spec) is not dict and not isinstance(spec, Mapping):
            raise ValueError("payload: event_type must be a mapping")
        event_type = TYPE_REGISTRY.resolve(spec)
        event_id = payload.get("event_id")
        timestamp = payload.get("timestamp")
        parent_id = payload.get("parent_id")
        data = payload.get("data")
        if not valid_event_id(event_id):
            raise ValueError("payload: event_id must be a string made by Event (prefix-counter)")
        if not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool) or not valid_timestamp(timestamp):
            raise ValueError("payload: timestamp must be a number of seconds since the epoch a datetime can hold")
        if parent_id is not None and not isinstance(parent_id, str):
            raise ValueError("payload: parent_id must be a string or None")
        if data is not None and type(data) is not dict and not isinstance(data, Mapping):
            raise ValueError("payload: data must be a mapping")
        # What to_dict would refuse is refused here too (a cycle, nesting
        # past MAX_NESTING, a non-JSON value or key), so every event read
        # back can be written again: the round trip holds both ways.
        source = payload.get("source")
        if source is not None and type(source) is not str:  # (what most sources are needs no walk)
            source = json_safe(source, "payload.source", None)
        data = json_safe(data, "payload.data", None) if data else None
        target: type[Event] = cls
        read = CLASS_KINDS.get(type(event_type))
        if read is not None:
            target, data = event_type, read(event_type, data or {})  # type: ignore[assignment]
        if not issubclass(target, cls) or (read is None and type(cls) in CLASS_KINDS):
            raise ValueError(f"payload: an event of {shown_name(event_type)}, not of {cls.__qualname__}")
        event = target.__new__(target)
        event._event_type = event_type
        event._key = type_key(event_type)
        if data:
            event._data, event._view = data, None  # the view made on first use, as for a new event
        else:
            event._data = event._view = _EMPTY
        event._source = source
        event._prefix = event_id
        event._seq = None
        event._ts = float(timestamp)
        event._parent_id = parent_id
        event._origin = origin
        return event
