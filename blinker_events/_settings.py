"""A bus's settings as one immutable value.

:class:`BusSettings` is frozen: a bus never changes its settings in place,
it swaps in a new value (:meth:`BusSettings.replace`, checked in full
first), so whoever read ``bus.settings`` holds a consistent set, and a
change of several settings at once is seen all together or not at all.

Each field carries its own check (see :mod:`._checks`), and the
integrations derive their configuration tables -- names, defaults, checks
-- from :func:`fields`, so a setting is declared once, here.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from ._checks import check_flag, check_overflow, check_positive_int, check_sync_executor, check_timeout
from ._describe import describe

__all__ = ["SETTING_NAMES", "BusSettings", "LiveSettings", "check_setting", "default_of", "fields"]

Check = Callable[[Any, str], Any]


def _setting(default: Any, check: Check, doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"check": check, "doc": doc})


@dataclasses.dataclass(frozen=True, slots=True)
class BusSettings:
    """Every setting of an :class:`~blinker_events.EventBus`, checked.

    Making one checks every field, in the order below, and raises the
    TypeError or ValueError of the first bad one, naming it. A checked
    value is stored as the plain built-in type (an ``int`` subclass as its
    ``int`` value, and so on), so a setting cannot change after its check.
    """

    timeout: float | None = _setting(None, check_timeout, "default per-receiver timeout in seconds; None: no timeout")
    propagate_exceptions: bool = _setting(
        False, check_flag, "raise receiver errors from the publish call after every receiver ran"
    )
    failure_threshold: int = _setting(3, check_positive_int, "consecutive failures before a subscription is disabled")
    history_size: int = _setting(
        1000,
        lambda value, name: check_positive_int(value, name, minimum=0),
        "publishes the history keeps; 0 turns it off",
    )
    max_depth: int = _setting(16, check_positive_int, "deepest nesting of publishes from receivers")
    queue_size: int = _setting(10000, check_positive_int, "bound of the worker queue of publish_nowait")
    overflow: str = _setting("block", check_overflow, "full-queue policy: 'block', 'raise' or 'drop_oldest'")
    sync_executor: str = _setting(
        "worker", check_sync_executor, "where await publish runs sync receivers: 'worker' or 'thread_sensitive'"
    )
    slow_after: float | None = _setting(
        None, check_timeout, "seconds after which a receiver still running is logged and counted as slow; None: off"
    )

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = field.metadata["check"](getattr(self, field.name), field.name)
            object.__setattr__(self, field.name, value)  # frozen: only the checked value goes in

    def replace(self, **changes: Any) -> BusSettings:
        """A copy with ``changes`` applied; the whole new value is checked
        before it exists. An unknown name is a TypeError naming it."""
        unknown = sorted(set(changes) - set(SETTING_NAMES))
        if unknown:
            raise TypeError(f"configure() got unknown setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)


#: The settings' names, in declaration order.
SETTING_NAMES: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(BusSettings))
_FIELDS = {field.name: field for field in dataclasses.fields(BusSettings)}


def fields() -> tuple[dataclasses.Field[Any], ...]:
    """The settings' fields: ``name``, ``default``, ``metadata["check"]``
    (``check(value, label)``) and ``metadata["doc"]``."""
    return dataclasses.fields(BusSettings)


def check_setting(setting: str, value: Any, label: str | None = None) -> Any:
    """Check ``value`` for the setting named ``setting`` (one of
    :data:`SETTING_NAMES`) as :class:`BusSettings` does; errors name it
    ``label`` (default: the setting's own name).

    :returns: the value as the bus keeps it (plain ``float``, ``int``, ``str``).
    :raises TypeError, ValueError: a bad value, naming ``label``; ValueError
        for an unknown ``setting``.
    """
    check: Check = _field(setting).metadata["check"]
    return check(value, label or setting)


def default_of(setting: str) -> Any:
    """What a bus has for ``setting`` unless told otherwise.

    :raises ValueError: an unknown ``setting``.
    """
    return _field(setting).default


def _field(setting: object) -> Any:
    try:
        return _FIELDS[setting]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(f"setting must be one of {', '.join(SETTING_NAMES)}, not {describe(setting)}") from None


class LiveSettings:
    """The current :class:`BusSettings` of one bus, shared by everything
    that reads a setting at use (the guards, the worker queue, the
    dispatch code): ``live.value`` is always one whole, checked value.

    :meth:`change` makes the new value (checking it in full) and swaps it
    in under a lock, so concurrent changes do not lose each other's
    fields; readers take no lock, since replacing one attribute is atomic.
    A component waiting on a setting (a publisher blocked for room in the
    worker queue) is told of each change by a watcher (see :meth:`watch`).
    """

    __slots__ = ("_lock", "_watchers", "value")

    def __init__(self, value: BusSettings) -> None:
        self._lock = threading.Lock()
        self._watchers: tuple[Callable[[], None], ...] = ()
        self.value = value

    def watch(self, changed: Callable[[], None]) -> None:
        """Call ``changed()`` after every change from now on, outside the
        lock; it must not raise."""
        with self._lock:
            self._watchers = (*self._watchers, changed)

    def change(self, apply: Callable[[BusSettings, BusSettings], None] | None = None, **changes: Any) -> BusSettings:
        """Swap in ``value.replace(**changes)`` and return it. ``apply(old,
        new)``, if given, runs under the same lock just before the swap: a
        component whose state follows a setting (the history's bound)
        follows it in the same order as the swaps. Nothing changes if the
        check or ``apply`` raises."""
        with self._lock:
            old = self.value
            new = old.replace(**changes)
            if apply is not None:
                apply(old, new)
            self.value = new
            watchers = self._watchers
        for changed in watchers:
            changed()
        return new
