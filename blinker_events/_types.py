"""Event types: the built-in :class:`EventType` enum, what can be one, the
key the bus files each under, their names, and the registry that finds a
type again from its name in a dictionary made by ``Event.to_dict``.

An *event type* is any of: a member of an :class:`enum.Enum` (usually of a
subclass of :class:`EventType`), a plain string, a :class:`blinker.Signal`,
or a typed event class (see :mod:`._typed`), whose instances are its events.
Two event types are the same only when they are the same object (strings:
equal strings), so two enums with members of the same name never collide,
not even a ``StrEnum`` member and the string of its value.

The public alias of all of these, ``EventTypeLike``, lives with
:class:`~blinker_events.Event` in :mod:`._events` (it names the event
class); here they are :data:`AnyEventType`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from typing import Any, ClassVar, TypeAlias

from blinker import NamedSignal, Signal

from ._describe import describe, pass_interrupt

__all__ = [
    "CLASS_KINDS",
    "KEYED_BY_ID",
    "NAME_LIMIT",
    "TYPE_REGISTRY",
    "AnyEventType",
    "EventType",
    "SystemEventType",
    "TypeKey",
    "event_type_name",
    "same_source",
    "shown_name",
    "type_key",
    "type_matcher",
]

#: Any event type, as this module's functions take them.
AnyEventType: TypeAlias = "Enum | str | Signal | type"
#: What the bus files an event type under: the string itself, or an id().
TypeKey: TypeAlias = "int | str"


class EventType(Enum):
    """Base class for event types.

    It has no members of its own so that it can be extended, exactly as the
    guide shows::

        class MyEventTypes(EventType):
            MY_CUSTOM_EVENT = auto()

    ``auto()`` gives each member its lower-cased name as value. The built-in
    types (``EventType.SYSTEM_STARTUP`` and friends) are members of
    :class:`SystemEventType`, reachable through this class as attributes.
    """

    # Declared (not assigned) so type checkers know them; the values are
    # attached below, once SystemEventType exists.
    SYSTEM_STARTUP: ClassVar[SystemEventType]
    SYSTEM_SHUTDOWN: ClassVar[SystemEventType]
    SYSTEM_ERROR: ClassVar[SystemEventType]
    SUBSCRIBER_DISABLED: ClassVar[SystemEventType]

    @staticmethod
    def _generate_next_value_(name: str, start: int, count: int, last_values: list[Any]) -> Any:
        return name.lower()


class SystemEventType(EventType):
    """The event types the bus defines itself."""

    # The ignores: mypy sees these members as overriding the declarations on
    # EventType, which exist precisely so that EventType.X type-checks.
    SYSTEM_STARTUP = "system_startup"  # type: ignore[misc]
    SYSTEM_SHUTDOWN = "system_shutdown"  # type: ignore[misc]
    SYSTEM_ERROR = "system_error"  # type: ignore[misc]
    #: Published by the bus when it auto-disables a subscription.
    SUBSCRIBER_DISABLED = "subscriber_disabled"  # type: ignore[misc]


# EventType must stay memberless to be subclassable, so the built-ins are
# attached as plain class attributes: ``EventType.SYSTEM_STARTUP`` then works
# everywhere, including on subclasses (``MyEventTypes.SYSTEM_STARTUP``).
for _member in SystemEventType:
    setattr(EventType, _member.name, _member)
del _member


# -- identity and names of event types ---------------------------------------


#: Classes whose instances ``type_key`` accepted as event types keyed by id.
KEYED_BY_ID: set[type] = set()
#: Metaclasses of typed event classes (``_typed`` adds its own), each with
#: how its classes read their fields back from :meth:`Event.to_dict` data
#: (checked and converted, ValueError naming the field): such a class is
#: an event type, keyed by id, and only its instances are its events.
CLASS_KINDS: dict[type, Callable[[Any, Mapping[str, Any]], dict[str, Any]]] = {}


def type_key(event_type: object) -> TypeKey:
    """Return the dictionary key the bus files ``event_type`` under.

    Strings key by value, everything else by identity: ``Enum.__hash__`` is
    Python code and, worse, a ``StrEnum`` member compares equal to its value.
    Raises ``TypeError`` for anything that is not an event type.
    """
    kind = type(event_type)
    if kind is str:
        return event_type  # type: ignore[return-value]
    if kind in KEYED_BY_ID or kind in CLASS_KINDS:
        return id(event_type)
    if isinstance(event_type, (Enum, Signal)):
        KEYED_BY_ID.add(kind)
        return id(event_type)
    raise TypeError(
        "event_type must be an Enum member, a str, a blinker Signal or a TypedEvent class, "
        f"not {type(event_type).__name__}"
    )


def _enum_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def event_type_name(event_type: AnyEventType) -> str:
    """A readable name for ``event_type``: ``"MyEventTypes.MY_CUSTOM_EVENT"``
    for an enum member, the string itself, or the signal's name.

    :param event_type: any event type.
    """
    if isinstance(event_type, Enum):
        return f"{type(event_type).__qualname__}.{event_type.name}"
    if isinstance(event_type, str):
        return event_type
    if isinstance(event_type, NamedSignal):
        return event_type.name
    if type(event_type) in CLASS_KINDS:
        return event_type.__qualname__  # type: ignore[union-attr]
    return repr(event_type)


#: The longest event type name a message shows before it is cut.
NAME_LIMIT = 120


def shown_name(event_type: AnyEventType) -> str:
    """:func:`~blinker_events.event_type_name` for a message, at most ``NAME_LIMIT`` (120)
    characters: the name is the application's (a string of any length), and
    a log line must stay a line. The full name stays the type's key."""
    name = event_type_name(event_type)
    return name if len(name) <= NAME_LIMIT else name[: NAME_LIMIT - 3] + "..."


def same_source(held: object, wanted: object) -> bool:
    """Whether ``held`` (a subscription's tag, an event's source) is
    ``wanted``: the same object, else equal. Both are the application's, and
    ``==`` runs their ``__eq__`` -- a detached ORM instance's raises. One
    object that cannot be compared must not stop a lookup over everyone's:
    an exception from either side (from ``__eq__``, or from ``bool`` of what
    it returned), ``SystemExit`` included, counts as "not equal"."""
    if held is wanted:
        return True
    try:
        return bool(held == wanted)
    except BaseException as exc:  # SystemExit too: another owner's object must not end this lookup
        pass_interrupt(exc)
        return False


class _TypeRegistry:
    """Finds the event type named in a dictionary made by :meth:`Event.to_dict`.

    Subclasses of :class:`EventType` are found by walking the class tree, so
    they need no registration. Other enums and named signals are found once a
    bus has seen one of their members (buses call :meth:`remember`). Nothing
    is ever imported by name: a dictionary from the wire cannot make this
    process run code.
    """

    def __init__(self) -> None:
        self._enums: dict[str, weakref.WeakSet[type[Enum]]] = {}
        self._signals: weakref.WeakValueDictionary[str, Signal] = weakref.WeakValueDictionary()
        # Typed event classes, remembered as each is defined.
        self._classes: dict[str, weakref.WeakSet[type]] = {}

    def remember(self, event_type: AnyEventType) -> None:
        if type(event_type) in CLASS_KINDS:
            self._classes.setdefault(_enum_path(event_type), weakref.WeakSet()).add(event_type)  # type: ignore[arg-type]
        elif isinstance(event_type, Enum):
            self._enums.setdefault(_enum_path(type(event_type)), weakref.WeakSet()).add(type(event_type))
        elif isinstance(event_type, NamedSignal):
            self._signals.setdefault(event_type.name, event_type)

    def _event_type_classes(self) -> Iterator[type[EventType]]:
        pending: list[type[EventType]] = [EventType]
        while pending:
            cls = pending.pop()
            yield cls
            pending.extend(cls.__subclasses__())

    def find_enum(self, path: str) -> type[Enum]:
        found: set[type[Enum]] = {cls for cls in self._event_type_classes() if _enum_path(cls) == path}
        found.update(self._enums.get(path, ()))
        if len(found) > 1:
            raise ValueError(f"event_type: {describe(path)} names {len(found)} different enum classes")
        if not found:
            raise ValueError(f"event_type: unknown enum {describe(path)}")
        return found.pop()

    def resolve(self, spec: Mapping[str, Any]) -> AnyEventType:
        kind = spec.get("kind")
        if kind == "str" and isinstance(spec.get("name"), str):
            return str(spec["name"])
        if kind == "enum":
            cls = self.find_enum(str(spec.get("enum")))
            try:
                return cls[str(spec.get("member"))]
            except KeyError:
                member = describe(spec.get("member"))
                raise ValueError(f"event_type: {cls.__qualname__} has no member {member}") from None
        if kind == "class":
            path = str(spec.get("class"))
            classes = set(self._classes.get(path, ()))
            if len(classes) != 1:
                why = "unknown event class" if not classes else f"{len(classes)} different event classes named"
                raise ValueError(f"event_type: {why} {describe(path)}")
            return classes.pop()
        if kind == "signal":
            signal = self._signals.get(str(spec.get("name")))
            if signal is None:
                raise ValueError(f"event_type: unknown signal {describe(spec.get('name'))}")
            return signal
        raise ValueError(f"event_type: cannot read {describe(dict(spec))}")

    @staticmethod
    def describe(event_type: AnyEventType) -> dict[str, str]:
        if isinstance(event_type, Enum):
            return {"kind": "enum", "enum": _enum_path(type(event_type)), "member": event_type.name}
        if isinstance(event_type, str):
            return {"kind": "str", "name": event_type}
        if isinstance(event_type, NamedSignal):
            return {"kind": "signal", "name": event_type.name}
        if type(event_type) in CLASS_KINDS:
            return {"kind": "class", "class": _enum_path(event_type)}  # type: ignore[arg-type]
        raise ValueError("event_type: an unnamed blinker Signal cannot be written to a dict")


TYPE_REGISTRY = _TypeRegistry()


def type_matcher(event_type: AnyEventType | None) -> Callable[[Any], bool]:
    """Whether an event is of ``event_type`` as the bus delivers it (None:
    of any type): an event of a typed event class is of that class and of
    every class it derives from, as their receivers get it; any other event
    is of its own type only. ``TypeError`` for what is not an event type."""
    if event_type is None:
        return _any_type
    if type(event_type) in CLASS_KINDS:
        cls: type = event_type  # type: ignore[assignment]
        return lambda event: isinstance(event, cls)
    key = type_key(event_type)
    return lambda event: event._key == key


def _any_type(event: Any) -> bool:
    return True
