"""Carry a bus's events across processes and hosts through Redis Streams.

Needs the ``redis`` extra (``pip install "blinker-events[redis]"``)::

    from blinker_events import EventBus
    from blinker_events.redis import RedisBridge

    bus = EventBus()
    bridge = RedisBridge(bus, "redis://127.0.0.1:6379/0", stream="orders", event_types=["order.created"])
    bridge.start()          # sync apps: runs on the bus's loop thread
    # await bridge.start_async()   # async apps: runs on your loop

See :class:`RedisBridge`, and the Redis Streams page of the documentation
for what crosses, broadcast or group, and the exact guarantees:
https://blinker-events.readthedocs.io/en/latest/redis.html (``docs/redis.md``).
"""

from __future__ import annotations

from ._bridge import RedisBridge
from ._wire import WireError

__all__ = ["RedisBridge", "WireError"]
