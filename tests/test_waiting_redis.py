"""Waiting for, streaming and capturing events that arrive from another
process through the Redis bridge (a real redis-server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("redis")

from blinker_events import Event, EventBus
from blinker_events.redis import RedisBridge
from blinker_events.redis.testing import RedisServer
from blinker_events.testing import capture

from .conftest import REDIS_WAIT, Demo


@pytest.fixture
def bridged(redis_server: RedisServer) -> Iterator[tuple[EventBus, EventBus]]:
    """Two buses bridged through one stream, as two processes would be."""
    pairs = [RedisBridge(EventBus(), redis_server.url, stream="waiting") for _ in range(2)]
    for bridge in pairs:
        assert bridge.start()
    yield pairs[0].bus, pairs[1].bus
    for bridge in pairs:
        assert bridge.stop(timeout=10) == 0
        bridge.bus.shutdown(timeout=10)


@pytest.mark.asyncio
async def test_an_event_from_another_node_wakes_a_waiter_and_reaches_a_stream(
    bridged: tuple[EventBus, EventBus],
) -> None:
    here, there = bridged
    with capture(here) as published:
        async with here.stream(Demo.PING, timeout=REDIS_WAIT) as events:
            async with here.expect(Demo.PING, lambda e: e.data["n"] == 2, timeout=REDIS_WAIT) as waiter:
                for n in range(3):
                    there.publish_sync(Event(Demo.PING, {"n": n}))
                got = await waiter
            streamed = [(await anext(events)).data["n"] for _ in range(3)]
    assert got.is_remote
    assert got.data == {"n": 2}
    assert streamed == [0, 1, 2]
    assert published.assert_published(Demo.PING, n=1).is_remote
