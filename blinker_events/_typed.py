"""Typed events: event classes whose instances are their events.

::

    class OrderPlaced(TypedEvent):
        order_id: int
        note: str = ""

    bus.subscribe(OrderPlaced, on_placed)       # on_placed(event: OrderPlaced)
    bus.publish_sync(OrderPlaced(order_id=42, source="shop"))

A subclass of :class:`TypedEvent` declares its fields as annotations, as a
dataclass does (``typing.dataclass_transform`` tells type checkers so): the
constructor takes them as keyword arguments (and ``source``), each checked
against its annotation, and they are read-only attributes. The class itself
is the event type, and an instance is an :class:`~._events.Event` like any
other -- ``event_id``, ``timestamp``, ``parent_id``, ``source``, ``data``
(the fields, read-only), history, reports, the cycle guard, ``to_dict``.

Fields are JSON-safe and immutable by construction, so that every event can
cross a bridge and no receiver can change what the next one sees: an
annotation is ``str``, ``int``, ``float``, ``bool``, ``None``, a ``Literal``
of those, ``tuple[X, ...]`` / ``tuple[X, Y]`` / ``Sequence[X]`` (kept as a
tuple), ``Mapping[str, X]`` (kept as a read-only mapping), a union of those,
or ``Any`` (checked JSON-safe when the event is made, and kept as its JSON
copy made immutable: arrays as tuples, objects as read-only mappings).
Anything else -- ``datetime``, ``set``, ``list``, ``dict``, a class -- is a
``TypeError`` when the class is defined. A value that does not fit its
annotation is a ``TypeError`` naming the field when the event is made; one
with no JSON form (``nan``, an int past the digit limit) a ``ValueError``.

A receiver subscribed to a class also receives the events of its
subclasses (``isinstance``, as ``functools.singledispatch`` resolves by the
MRO): the bus resolves who receives a class once, when its route is built
(see :mod:`._class_routes`), not per publish.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias, TypedDict, TypeVar, dataclass_transform

from ._describe import LIMIT, describe
from ._events import Event
from ._serial import json_safe
from ._types import CLASS_KINDS, TYPE_REGISTRY, shown_name

__all__ = ["E", "Options", "R", "Receives", "TypedEvent", "is_event_class"]

#: A typed event class, in the signatures of ``subscribe``.
E = TypeVar("E", bound="TypedEvent")
R = TypeVar("R")
#: What ``subscribe(cls)`` without a callback returns: a decorator taking a
#: receiver of ``cls`` (type checkers refuse a receiver of another class).
Receives: TypeAlias = Callable[[Callable[[E], R]], Callable[[E], R]]


class Options(TypedDict, total=False):
    """The keyword arguments of ``subscribe`` (see ``Registry.subscribe``)."""

    source: Any
    sender: Any
    timeout: float | None
    reentrant: bool
    weak: bool | None


#: Checks one value against a field's annotation and returns what the event
#: keeps (its immutable, JSON-safe form); raises _Mismatch or ValueError.
_Check = Callable[[Any, str], Any]


class _Mismatch(Exception):
    """A value that does not fit an annotation (becomes a TypeError)."""


def is_event_class(obj: object) -> bool:
    """Whether ``obj`` is :class:`TypedEvent` or a subclass of it."""
    return type(obj) in CLASS_KINDS


class _EventClass(type):
    """The metaclass of typed event classes: gives each class empty
    ``__slots__`` (so an event takes no attributes but its fields, which are
    read-only properties), and marks the classes as event types."""

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> _EventClass:
        namespace.setdefault("__slots__", ())
        return super().__new__(mcls, name, bases, namespace, **kwargs)


def _read_fields(cls: type[TypedEvent], data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``cls`` from :meth:`Event.to_dict` data (from_dict's hook)."""
    try:
        return cls._build(dict(data), "payload.data")
    except TypeError as exc:  # a wire value of the wrong type is invalid data, not a bad call
        raise ValueError(str(exc)) from None


CLASS_KINDS[_EventClass] = _read_fields


@dataclass_transform(kw_only_default=True, frozen_default=True)
class _Root(Event, metaclass=_EventClass):
    # The class type checkers derive typed events from; TypedEvent is the
    # first of them, so its ``source`` counts as a field for them (a keyword
    # argument of every constructor).
    __slots__ = ()


class TypedEvent(_Root):
    """Base class of typed events; see the module documentation.

    ``OrderPlaced(order_id=42, source=shop)``: keyword arguments only, one per
    field (a missing field without default, or an unknown one, is a
    ``TypeError`` naming it), and ``source`` as for :class:`Event`. Fields
    are read-only attributes, and ``event.data`` maps their names to their
    values. Events compare by identity, as every :class:`Event` does: two
    orders placed with the same fields are two events.

    A class declared with ``collect=True`` (``class GetPrice(TypedEvent,
    collect=True)``) is a query: every publish of it keeps each receiver's
    return value in ``report.results`` (subclasses inherit it).

    Field names must not start with ``_`` nor be an attribute of
    :class:`Event` (``source``, ``data``, ``event_id``...).
    """

    __slots__ = ()

    if TYPE_CHECKING:
        source: Any = None

    #: The fields: name -> (check, default or _REQUIRED), in declaration order.
    _fields: ClassVar[dict[str, tuple[_Check, Any]]] = {}
    #: Whether publishes of this class keep receivers' return values.
    collect: ClassVar[bool] = False

    def __init_subclass__(cls, *, collect: bool | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if collect is not None:
            if not isinstance(collect, bool):
                raise TypeError(f"collect must be a bool, not {type(collect).__name__}")
            cls.collect = collect
        # Inherited ones first, from every TypedEvent base, in the order a
        # dataclass takes them (the reverse of the MRO).
        fields: dict[str, tuple[_Check, Any]] = {}
        for base in reversed(cls.__mro__[1:]):
            fields.update(base.__dict__.get("_fields", {}))
        try:
            own = inspect.get_annotations(cls, eval_str=True)
        except Exception as exc:  # a name the annotation uses is not defined (yet)
            raise TypeError(f"{cls.__qualname__}: cannot read its annotations: {describe(exc)}") from None
        for name in fields:
            if name in cls.__dict__ and name not in own:
                # A bare class attribute would hide the field's property.
                raise TypeError(f"{cls.__qualname__}.{name}: a new default of an inherited field needs its annotation")
        for name, annotation in own.items():
            if _is_class_var(annotation):
                continue
            where = f"{cls.__qualname__}.{name}"
            if name.startswith("_") or name in _TAKEN:
                raise TypeError(f"{where}: a field must not start with '_' nor be named as an Event attribute")
            check = _compile(annotation, where)
            default = cls.__dict__.get(name, _REQUIRED)
            if default is not _REQUIRED:
                try:
                    check(default, f"{where} (default)")
                except _Mismatch as exc:
                    raise TypeError(str(exc)) from None
            fields[name] = (check, default)
            setattr(cls, name, property(_getter(name), doc=f"The field ``{name}``: {_shown(annotation)}."))
        cls._fields = fields
        params = [inspect.Parameter("source", inspect.Parameter.KEYWORD_ONLY, default=None)]
        params += [
            inspect.Parameter(
                n, inspect.Parameter.KEYWORD_ONLY, default=inspect.Parameter.empty if d is _REQUIRED else d
            )
            for n, (_, d) in fields.items()
        ]
        cls.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        TYPE_REGISTRY.remember(cls)  # from_dict finds it from now on

    def __init__(self, *args: Any, source: Any = None, **fields: Any) -> None:
        cls = type(self)
        if args:
            raise TypeError(f"{cls.__qualname__}() takes its fields as keyword arguments only")
        Event.__init__(self, cls, cls._build(fields, cls.__qualname__), source)

    @classmethod
    def _build(cls, given: dict[str, Any], path: str) -> dict[str, Any]:
        """Each field's checked value, from ``given`` (or its default)."""
        fields = cls._fields
        for name in given:
            if name not in fields:
                where = cls.__qualname__ if path == cls.__qualname__ else f"{path}: {cls.__qualname__}"
                raise TypeError(f"{where} has no field {describe(name, 80)}")
        data = {}
        for name, (check, default) in fields.items():
            value = given.get(name, default)
            if value is _REQUIRED:
                raise TypeError(f"{path}.{name}: missing, and the field has no default")
            try:
                data[name] = check(value, f"{path}.{name}")
            except _Mismatch as exc:
                raise TypeError(str(exc)) from None
        return data

    def __repr__(self) -> str:
        # Field values are the application's: described, and the whole cut
        # to a log line's length.
        parts = [f"{name}={describe(value, 80)}" for name, value in self._data.items()]
        if self._source is not None:
            parts.append(f"source={describe(self._source, 80)}")
        text = f"{shown_name(type(self))}({', '.join(parts)}, id={self.event_id!r})"
        return text if len(text) <= LIMIT else text[: LIMIT - 4] + "...)"


_TAKEN = frozenset(dir(TypedEvent)) | {"source", "collect"}
_REQUIRED: Any = object()


def _getter(name: str) -> Callable[[TypedEvent], Any]:
    def get(event: TypedEvent) -> Any:
        return event._data[name]

    return get


# -- annotations to checks ------------------------------------------------------

_SUPPORTED = (
    "str, int, float, bool, None, a Literal of those, tuple[X, ...], tuple[X, Y], Sequence[X], "
    "Mapping[str, X], a union of those, or Any"
)


def _compile(annotation: Any, where: str) -> _Check:  # noqa: PLR0911 - a return per kind of annotation
    """The check of a field annotated ``annotation``; TypeError if no
    JSON-safe, immutable value can have that type."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or annotation is object:
        return _any
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if origin is typing.Annotated:
        return _compile(args[0], where)
    if origin is Literal:
        for option in args:
            if option is not None and type(option) not in (str, int, bool):
                raise TypeError(f"{where}: Literal[{describe(option)}] is not a JSON scalar")
        return _literal(args)
    if origin is typing.Union or origin is types.UnionType:
        return _union([_compile(arg, where) for arg in args], annotation)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence(_compile(args[0], where))
        if args == ((),):
            return _fixed([])
        return _fixed([_compile(arg, where) for arg in args])
    if origin is collections.abc.Sequence:
        return _sequence(_compile(args[0], where) if args else _any)
    if origin is collections.abc.Mapping:
        if args and args[0] is not str:
            raise TypeError(f"{where}: a Mapping field's keys must be str (JSON object keys)")
        return _mapping(_compile(args[1], where) if args else _any)
    if annotation in (list, dict, set, frozenset) or origin in (list, dict, set, frozenset):
        hint = "Mapping[str, X]" if dict in (annotation, origin) else "tuple[X, ...] or Sequence[X]"
        raise TypeError(f"{where}: {_shown(annotation)} is mutable or not JSON; declare {hint}")
    raise TypeError(f"{where}: {_shown(annotation)} is not a JSON-safe field type; use {_SUPPORTED}")


def _is_class_var(annotation: Any) -> bool:
    return annotation is ClassVar or typing.get_origin(annotation) is ClassVar


def _name(value: Any) -> str:
    return type(value).__name__


def _shown(annotation: Any) -> str:
    return annotation.__qualname__ if isinstance(annotation, type) else describe(annotation, 80)


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _Mismatch(f"{path}: expected str, got {_name(value)}")
    return str.__str__(value)  # a str subclass by its value


def _int(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Mismatch(f"{path}: expected int, got {_name(value)}")
    return int(json_safe(int(value), path, None))  # json_safe: the digit limit


def _float(value: Any, path: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _Mismatch(f"{path}: expected float, got {_name(value)}")
    if isinstance(value, int):
        json_safe(value, path, None)
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"{path}: an int too large for a float") from None
    return float(json_safe(float(value), path, None))  # json_safe: nan and inf


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _Mismatch(f"{path}: expected bool, got {_name(value)}")
    return value


def _none(value: Any, path: str) -> None:
    if value is not None:
        raise _Mismatch(f"{path}: expected None, got {_name(value)}")


def _any(value: Any, path: str) -> Any:
    return _frozen(json_safe(value, path, None))


def _frozen(value: Any) -> Any:
    """A JSON copy made immutable, as every field is: arrays as tuples,
    objects as read-only mappings (json_safe bounds the nesting)."""
    if isinstance(value, dict):
        return MappingProxyType({key: _frozen(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


_SCALARS: dict[Any, _Check] = {str: _str, int: _int, float: _float, bool: _bool, None: _none, type(None): _none}


def _literal(options: tuple[Any, ...]) -> _Check:
    def check(value: Any, path: str) -> Any:
        for option in options:
            if type(value) is type(option) and value == option:
                return option
        raise _Mismatch(f"{path}: expected one of {describe(list(options))}, got {describe(value, 80)}")

    return check


def _union(checks: list[_Check], annotation: Any) -> _Check:
    def check(value: Any, path: str) -> Any:
        for one in checks:
            try:
                return one(value, path)
            except _Mismatch:
                continue
        raise _Mismatch(f"{path}: expected {_shown(annotation)}, got {_name(value)}")

    return check


def _items(value: Any, path: str) -> list[Any]:
    if not isinstance(value, (tuple, list)):
        raise _Mismatch(f"{path}: expected a tuple, got {_name(value)}")
    return list(value)


def _sequence(item: _Check) -> _Check:
    def check(value: Any, path: str) -> tuple[Any, ...]:
        return tuple(item(one, f"{path}[{i}]") for i, one in enumerate(_items(value, path)))

    return check


def _fixed(items: list[_Check]) -> _Check:
    def check(value: Any, path: str) -> tuple[Any, ...]:
        values = _items(value, path)
        if len(values) != len(items):
            raise _Mismatch(f"{path}: expected {len(items)} items, got {len(values)}")
        return tuple(one(v, f"{path}[{i}]") for i, (one, v) in enumerate(zip(items, values, strict=True)))

    return check


def _mapping(item: _Check) -> _Check:
    def check(value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise _Mismatch(f"{path}: expected a mapping, got {_name(value)}")
        out = {}
        for key, one in value.items():
            if not isinstance(key, str):
                raise _Mismatch(f"{path}: key {describe(key, 80)} is not a str")
            out[str.__str__(key)] = item(one, f"{path}.{key}")
        return MappingProxyType(out)

    return check
