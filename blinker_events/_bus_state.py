"""What a bus keeps, as :class:`~blinker_events.EventBus`'s API has it:
its settings and its history.

Split out of the facade only to keep each module readable; it holds no state
of its own. It reads the bus's one current settings value (``_live``, a
:class:`~._settings.LiveSettings`) and changes it through the bus's runtime
(``_runtime.configure``), which checks the whole new value before swapping it
in; and reads the bus's history (``_history``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._events import Event, EventTypeLike, PlainEventType
from ._history import History
from ._report import DeliveryReport
from ._settings import BusSettings, LiveSettings, check_setting

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["StateMethods"]

E = TypeVar("E", bound=Event)


def _setting_property(name: str) -> Any:
    return property(lambda bus: getattr(bus._live.value, name), doc=f"The current ``{name}`` (see ``bus.settings``).")


class StateMethods:
    """``settings``, ``configure``, the ``set_*`` methods and the read-only
    setting properties; ``get_history``, ``get_delivery_reports`` and
    ``clear_history``: for :class:`~blinker_events.EventBus` to inherit."""

    _live: LiveSettings
    _runtime: Runtime
    _history: History

    # -- settings ------------------------------------------------------------

    @property
    def settings(self) -> BusSettings:
        """The current settings: one frozen, checked value. It never changes;
        :meth:`configure` (and each ``set_*``) swaps in a new one."""
        return self._live.value

    def configure(self, **changes: Any) -> None:
        """Change several settings at once: any fields of :class:`~blinker_events.lowlevel.BusSettings`
        (``timeout``, ``propagate_exceptions``, ``failure_threshold``,
        ``history_size``, ``max_depth``, ``queue_size``, ``overflow``,
        ``sync_executor``, ``slow_after``). The whole new value is checked before it is
        swapped in, atomically, so a bad one (TypeError/ValueError naming it)
        changes nothing, and ``bus.settings`` shows either every change or
        none. A publish already running reads each setting where it applies
        it, so it may apply the old value of one and the new of another
        (see :doc:`/settings`).

        :param changes: setting names and their new values.
        :raises TypeError: an unknown setting name, or a value of the wrong type.
        :raises ValueError: a value out of range; nothing changes.
        """
        self._runtime.configure(**changes)

    def _set(self, setting: str, value: Any, label: str) -> None:
        # The set_* methods name their argument in errors, not the setting.
        self._runtime.configure(**{setting: check_setting(setting, value, label)})

    def set_timeout(self, seconds: float | None) -> None:
        """Default per-receiver timeout: a positive finite number, or None.

        :raises TypeError, ValueError: ``seconds`` is neither None nor a positive
            number up to :data:`~blinker_events.lowlevel.MAX_TIMEOUT`.
        """
        self._set("timeout", seconds, "seconds")

    def set_propagate_exceptions(self, flag: bool) -> None:
        """Raise receivers' errors from the publish, after every receiver ran
        (the error itself, or an ``ExceptionGroup`` of several); a bool.

        :raises TypeError: ``flag`` is not a bool."""
        self._set("propagate_exceptions", flag, "flag")

    def set_failure_threshold(self, n: int) -> None:
        """Disable a subscription after ``n`` consecutive failures (default 3).

        :raises TypeError, ValueError: ``n`` is not an int from 1 up."""
        self._set("failure_threshold", n, "n")

    def set_history_size(self, n: int) -> None:
        """Keep the last ``n`` publishes (default 1000); 0 turns history off.

        :raises TypeError, ValueError: ``n`` is not an int from 0 up.
        """
        self._set("history_size", n, "n")

    def set_max_depth(self, n: int) -> None:
        """Stop any delivery once the causal chain is ``n`` long (default 16).

        :raises TypeError, ValueError: ``n`` is not an int from 1 up."""
        self._set("max_depth", n, "n")

    def set_queue_size(self, n: int) -> None:
        """Bound of the worker queue. Shrinking below what is queued drops
        nothing: publishers meet the overflow policy until it drains.

        :raises TypeError, ValueError: ``n`` is not an int from 1 up.
        """
        self._set("queue_size", n, "n")

    def set_overflow(self, policy: str) -> None:
        """What a publish meets when the worker queue is full: ``"block"``,
        ``"raise"`` or ``"drop_oldest"`` (see :doc:`/worker-queue`).

        :raises TypeError, ValueError: ``policy`` is not one of the three."""
        self._set("overflow", policy, "policy")

    def set_sync_executor(self, name: str) -> None:
        """Where ``await publish`` runs sync receivers from now on:
        ``"worker"`` or ``"thread_sensitive"``.

        :param name: ``"worker"`` or ``"thread_sensitive"``.
        :raises TypeError, ValueError: ``name`` is not one of the two.
        """
        self._set("sync_executor", name, "name")

    def set_slow_after(self, seconds: float | None) -> None:
        """Warn (once per receiver call, with its stack) about a receiver
        still running ``seconds`` after it started, and count it in
        ``stats()["slow_receivers"]``; None turns the warning off (the default).

        :raises TypeError, ValueError: ``seconds`` is neither None nor a positive
            number up to :data:`~blinker_events.lowlevel.MAX_TIMEOUT`.
        """
        self._set("slow_after", seconds, "seconds")

    # Each setting, read-only: what ``bus.settings`` has now.
    timeout: float | None = _setting_property("timeout")
    propagate_exceptions: bool = _setting_property("propagate_exceptions")
    failure_threshold: int = _setting_property("failure_threshold")
    history_size: int = _setting_property("history_size")
    max_depth: int = _setting_property("max_depth")
    queue_size: int = _setting_property("queue_size")
    overflow: str = _setting_property("overflow")
    sync_executor: str = _setting_property("sync_executor")
    slow_after: float | None = _setting_property("slow_after")

    # -- the history ---------------------------------------------------------

    # A typed event class gives its own instances (type checkers see so too).
    @overload
    def get_history(self, event_type: type[E], limit: int | None = None, *, source: Any = None) -> list[E]: ...
    @overload
    def get_history(
        self, event_type: PlainEventType | None = None, limit: int | None = None, *, source: Any = None
    ) -> list[Event]: ...
    def get_history(
        self, event_type: EventTypeLike | None = None, limit: int | None = None, *, source: Any = None
    ) -> list[Any]:
        """Recent events, oldest first; ``limit`` keeps the newest ``limit``.

        :param event_type: only events of this type; None: every type.
        :param limit: keep only the newest ``limit`` (0 gives ``[]``); None: all.
        :param source: only events whose source is this object, else equal to it.
        :returns: a list of :class:`~blinker_events.Event`, ordered by when their
            publish completed.
        :raises TypeError, ValueError: a bad ``event_type`` or ``limit``.
        """
        return self._history.events(event_type, limit, source=source)

    def get_delivery_reports(
        self, event_type: EventTypeLike | None = None, limit: int | None = None, *, source: Any = None
    ) -> list[DeliveryReport]:
        """Like :meth:`get_history`, but each entry is the publish's report
        (``report.event`` is the event).

        :param event_type: as for :meth:`get_history`.
        :param limit: as for :meth:`get_history`.
        :param source: as for :meth:`get_history`.
        :returns: a list of :class:`~blinker_events.DeliveryReport`.
        :raises TypeError, ValueError: a bad ``event_type`` or ``limit``.
        """
        return self._history.reports(event_type, limit, source=source)

    def clear_history(self) -> None:
        """Forget every publish the history holds."""
        self._history.clear()
