"""Isolation: give a bus back, after a test, the state it had before.

The default bus cannot be replaced for a test: an application binds its
functions at import (``publish = default_bus.publish``, ``from
blinker_events import subscribe``), and its import-time subscriptions live
on it. So :class:`Isolation` keeps the bus and snapshots its state instead:
entering, it notes the subscriptions (with their failure counts and
disabled states), settings,
enabled flag, dispatch context, outlets, observers and history, and clears
the history, so the test starts from a clean one. Leaving, it delivers what
the test queued, then undoes what the test did: its subscriptions are
removed, the snapshot's it removed are made again (with the same callback,
event type and options; made anew, they come last in delivery order) unless
they ended by themselves (callback or sender collected), failure counts and
disabled states are as noted, and settings, enabled flag, dispatch
context, outlets, observers (a stream the test left open) and history are
as before.

Not restored: ``bridge``/``guard`` calls a test made (undo them in the
test), and what a receiver holds in its own state.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker_events import EventBus, Subscription, default_bus, lowlevel
from blinker_events.lowlevel import describe

__all__ = ["Isolation", "isolated"]

logger = logging.getLogger("blinker_events")

#: Seconds leaving an isolation waits for the worker queue to drain.
DRAIN_SECONDS = 10.0


class Isolation:
    """The saved state of a bus and how to restore it (see :func:`isolated`).

    ``dropped`` is how many queued events the drain at exit had to drop;
    ``restored`` names what it had to undo (``"subscriptions added: 2"``...),
    empty when the test left the bus as it found it.
    """

    def __init__(self, bus: EventBus, *, drain_timeout: float | None = DRAIN_SECONDS) -> None:
        if not isinstance(bus, EventBus):
            raise TypeError(f"bus must be an EventBus, not {type(bus).__name__}")
        self.bus = bus
        self.drain_timeout = lowlevel.check_timeout(drain_timeout, "drain_timeout")
        self.dropped = 0
        self.restored: list[str] = []
        self._saved: dict[str, Any] | None = None

    def save(self) -> None:
        """Snapshot the bus and clear its history (``with`` does it)."""
        if self._saved is not None:
            raise RuntimeError("this isolation already holds a snapshot")
        bus = self.bus
        subs = bus.get_subscriptions()
        self._saved = {
            "subs": [(sub, sub.disabled, sub.failures) for sub in subs],
            "settings": bus.settings,
            "enabled": bus.is_enabled(),
            "context": bus.dispatch_context,
            "outlets": lowlevel.outlets(bus),
            "observers": lowlevel.observers(bus),
            "history": bus.get_delivery_reports(),
        }
        bus.clear_history()

    def restore(self) -> None:
        """Deliver what is queued, then put the snapshot back."""
        saved = self._saved
        if saved is None:
            raise RuntimeError("this isolation holds no snapshot: save() first")
        self._saved = None
        bus = self.bus
        self.dropped = lowlevel.drain(bus, self.drain_timeout)
        self.restored = []
        self._restore_subscriptions(saved["subs"])
        self._restore_observers(saved["observers"])
        if bus.settings != saved["settings"]:
            settings = saved["settings"]
            bus.configure(**{name: getattr(settings, name) for name in lowlevel.SETTING_NAMES})
            self.restored.append("settings")
        if bus.is_enabled() != saved["enabled"]:
            (bus.enable if saved["enabled"] else bus.disable)()
            self.restored.append("enabled" if saved["enabled"] else "disabled")
        if bus.dispatch_context is not saved["context"]:
            bus.set_dispatch_context(saved["context"])
            self.restored.append("dispatch context")
        self._restore_outlets(saved["outlets"])
        lowlevel.replace_history(bus, saved["history"])

    def _restore_subscriptions(self, saved: list[tuple[Subscription, bool, int]]) -> None:
        bus = self.bus
        kept = {sub.id for sub, _, _ in saved}
        added = [sub for sub in bus.get_subscriptions() if sub.id not in kept]
        for sub in added:
            sub.unsubscribe()
        removed = reset = 0
        for old, was_disabled, failures in saved:
            current = old if old.active else self._resubscribe(old)
            if current is None:
                continue
            if current is not old:
                removed += 1
            elif old.disabled == was_disabled and old.failures == failures:
                continue
            else:
                reset += 1
            # A failure count the test left would disable the receiver
            # sooner in the next test: the count is put back too.
            current.enable()
            current.failures, current.disabled = failures, was_disabled
        for what, count in (("added", len(added)), ("removed", removed), ("reset", reset)):
            if count:
                self.restored.append(f"subscriptions {what}: {count}")

    def _resubscribe(self, sub: Subscription) -> Subscription | None:
        """Make ``sub`` again, as it was made; None if it cannot be."""
        callback = sub.callback
        if callback is None:  # collected: it ended by itself
            return None
        if sub.plain:
            logger.warning("isolation: cannot restore %s, connected with blinker's connect", describe(sub))
            return None
        sender = sub.sender
        if sender is None:  # collected (a None sender stands for that): it ended by itself
            return None
        event_type: Any = sub.event_type  # any kind: the overloads cannot know which
        return self.bus.subscribe(
            event_type, callback, source=sub.source, sender=sender, timeout=sub.timeout, reentrant=sub.reentrant
        )

    def _restore_observers(self, saved: tuple[lowlevel.Observer, ...]) -> None:
        left = [o for o in lowlevel.observers(self.bus) if not any(o is s for s in saved)]
        for observer in left:
            lowlevel.unobserve(self.bus, observer)
            close = getattr(observer, "close", None)
            if callable(close):  # a waiter or stream: its consumers must not wait for good
                close()
        if left:
            self.restored.append(f"observers (waiters, streams, captures) left: {len(left)}")

    def _restore_outlets(self, saved: tuple[lowlevel.Outlet, ...]) -> None:
        now = lowlevel.outlets(self.bus)
        for outlet in now:
            if not any(outlet is s for s in saved):
                self.bus.remove_outlet(outlet)
                self.restored.append(f"outlet added: {describe(outlet)}")
        for outlet in saved:
            if not any(outlet is n for n in now):
                self.bus.add_outlet(outlet)
                self.restored.append(f"outlet removed: {describe(outlet)}")

    def __enter__(self) -> Isolation:
        self.save()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.restore()


def isolated(bus: EventBus | None = None, *, drain_timeout: float | None = DRAIN_SECONDS) -> Isolation:
    """An :class:`Isolation` of ``bus`` (None: the default bus), to use as
    a context manager::

        with isolated():
            ...  # subscribe, configure, publish on the default bus
        # the default bus is as it was, and its history too
    """
    return Isolation(default_bus if bus is None else bus, drain_timeout=drain_timeout)
