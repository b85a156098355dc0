"""The index of a registry's subscriptions.

Subscriptions by id, in order of subscription, and by ``(type key,
callback key)``, so that finding a callback's subscriptions -- to
unsubscribe it, or to return the existing subscription when the same one
is made again -- never looks at anyone else's: O(1) in the number of other
subscriptions. The registry's lock guards every call.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from ._subscription import Subscription, callback_key, same_callback
from ._types import TypeKey

__all__ = ["SubscriptionIndex"]


class SubscriptionIndex:
    """``by_id``: every attached subscription, oldest first."""

    __slots__ = ("_by_callback", "by_id")

    def __init__(self) -> None:
        self.by_id: dict[int, Subscription] = {}
        self._by_callback: dict[tuple[TypeKey | None, Hashable], dict[int, Subscription]] = {}

    def add(self, sub: Subscription) -> None:
        self.by_id[sub.id] = sub
        self._by_callback.setdefault((sub.type_key, sub.callback_key), {})[sub.id] = sub

    def discard(self, sub: Subscription) -> None:
        self.by_id.pop(sub.id, None)
        index = (sub.type_key, sub.callback_key)
        same = self._by_callback.get(index)
        if same is not None:
            same.pop(sub.id, None)
            if not same:
                del self._by_callback[index]

    def of_callback(self, key: TypeKey | None, callback: Callable[..., Any]) -> list[Subscription]:
        """The subscriptions of ``callback`` (compared as blinker compares
        receivers: a bound method by its function and object) to the type
        filed under ``key`` (None: its catch-alls)."""
        candidates = list(self._by_callback.get((key, callback_key(callback)), {}).values())
        return [s for s in candidates if same_callback(s.callback, callback)]

    def find_same(self, new: Subscription) -> Subscription | None:
        """An active subscription identical to ``new``: same callback, type,
        source, sender, timeout and reentrance."""
        callback = new.callback
        for sub in list(self._by_callback.get((new.type_key, new.callback_key), {}).values()):
            if (
                sub.active
                and same_callback(sub.callback, callback)
                and sub.source == new.source
                and sub.sender_id == new.sender_id
                and sub.timeout == new.timeout
                and sub.reentrant == new.reentrant
            ):
                return sub
        return None
