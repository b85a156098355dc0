"""Describing user objects in logs and messages without trusting them.

Receivers, events and their data belong to the application: a detached ORM
instance whose ``__repr__`` queries a closed session raises, a megabyte
string makes a megabyte log line, a self-referencing container recurses.
The bus describes such objects on threads no caller watches (the watchdog,
the worker, the bus loop), where an exception escaping a log call would kill
the thread and, with it, a guarantee. So every description of a user object
goes through :func:`describe`, which never raises and is bounded in size.
"""

from __future__ import annotations

import reprlib
import threading

__all__ = ["LIMIT", "describe", "pass_interrupt"]

LIMIT = 300
"""The longest description, in characters, before it is cut."""

_repr = reprlib.Repr()
_repr.maxlevel = 4
_repr.maxstring = 120
_repr.maxother = 120
_repr.maxdict = _repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = 12


def describe(obj: object, limit: int = LIMIT) -> str:
    """``repr(obj)``, at most ``limit`` characters, for any object.

    Containers are summarised (depth and length bounded, as :mod:`reprlib`
    does); an object whose ``__repr__`` raises -- anything, ``SystemExit``
    included, which would silently end a bus thread -- or returns a
    non-string is described by its type and id instead, with the
    exception's type. Only a ``KeyboardInterrupt`` on the main thread (a
    Ctrl-C that happened to arrive during the repr) goes on.

    :param obj: any object.
    :param limit: the most characters returned.
    :returns: the description; it never raises.
    """
    try:
        text = _repr.repr(obj)
        if not isinstance(text, str):  # reprlib passes on what __repr__ returned
            raise TypeError(f"__repr__ returned {type(text).__name__}")
    except BaseException as exc:  # a description must never fail
        pass_interrupt(exc)
        text = _unreadable(obj, exc)
    return text if len(text) <= limit else _cut(text, limit)


def _cut(text: str, limit: int) -> str:
    # The cut is marked ("...", and "...>" for a "<...>" repr) when the
    # limit leaves room for more than the mark.
    mark = "...>" if text.startswith("<") else "..."
    if limit <= len(mark):
        return text[: max(limit, 0)]
    return text[: limit - len(mark)] + mark


def pass_interrupt(exc: BaseException) -> None:
    """Re-raise ``exc`` if it is a Ctrl-C on the main thread; else return.

    For code that asks an application object something (its repr, its
    ``__eq__``, its attributes) and treats whatever that raises as the
    object's failure -- ``SystemExit`` included, which on a bus thread would
    end the thread silently, and from another owner's object would abort
    this caller's lookup. Only a ``KeyboardInterrupt`` that happened to
    arrive in the main thread meanwhile is not the object's doing.
    """
    if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
        raise exc


def _unreadable(obj: object, exc: BaseException) -> str:
    try:
        kind = type(obj).__qualname__
    except BaseException:  # a hostile metaclass
        kind = "object"
    return f"<{kind} object at {id(obj):#x} (repr raised {type(exc).__name__})>"
