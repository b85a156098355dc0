"""Inbound: reading the stream and publishing what it carries on the bus.

The *reader* is one task on the bridge's loop. It takes entries in batches
and hands each batch to a :class:`~._delivery.Delivery`, which publishes the
events on the bus in stream order -- every guard of the bus applies --
marked with their origin, so that no bridge forwards them again.

Broadcast mode (:func:`read_broadcast`): XREAD from the last id this bridge
saw, so after a reconnect it resumes where it stopped; a node skips its own
entries, whose receivers ran when they were published.

Group mode (:class:`GroupReader`): XREADGROUP hands each entry to one
consumer of the group. An entry is acknowledged only once its delivery
here succeeded; one that failed stays pending and is claimed again (XAUTOCLAIM)
once idle for ``claim_idle`` seconds, by whichever node gets there first --
which also rescues entries of a node that died. After ``max_deliveries``
an entry goes to the dead-letter stream instead. On start and after every
reconnect the node first re-reads its own pending entries: those it handled
but whose acknowledgement was lost are recognised by event id and only
acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING

from redis.exceptions import ResponseError

from .._describe import describe

from ._connection import (
    Entry,
    claim_idle,
    delivery_counts,
    ensure_group,
    group_consumers,
    newest_id,
    read_entries,
    read_group,
)

if TYPE_CHECKING:
    from ._connection import Backoff, Client
    from ._delivery import Delivery
    from ._session import Counters

__all__ = ["GroupReader", "read_broadcast"]

logger = logging.getLogger("blinker_events.redis")

#: How long one blocking read waits before the reader looks around (ms).
BLOCK_MS = 1000
#: Seconds a consumer with nothing pending may stay silent before the group
#: forgets it (at least ten times ``claim_idle``).
FORGET_CONSUMERS_AFTER = 3600.0


async def read_broadcast(
    client: Client,
    delivery: Delivery,
    stream: str,
    position: list[bytes],
    batch_size: int,
    backoff: Backoff,
    ready: Callable[[], None],
) -> None:
    """The broadcast reader. ``position`` holds the last id seen (empty:
    start at the stream's end) and outlives this task, so a restarted
    bridge resumes from it."""
    while True:
        async with backoff.retrying("reading the stream"):
            if not position:
                # Start at the newest entry rather than XREAD's "$": that
                # would miss what is written before the first read blocks.
                position.append(await newest_id(client, stream))
            ready()
            entries = await read_entries(client, stream, position[0], batch_size, BLOCK_MS)
            if entries:
                async with delivery.gate.batch():
                    # No retries in broadcast mode: a failed delivery is
                    # counted and logged, and the reader moves on.
                    await delivery.deliver(entries)
                    position[0] = entries[-1][0]


class GroupReader:
    """The group-mode reader task; see the module docstring."""

    def __init__(
        self,
        client: Client,
        delivery: Delivery,
        *,
        stream: str,
        group: str,
        consumer: str,
        batch_size: int,
        claim_idle: float,
        max_deliveries: int,
        backoff: Backoff,
        counters: Counters,
        ready: Callable[[], None],
    ) -> None:
        self._client = client
        self._delivery = delivery
        self._stream = stream
        self._group = group
        self._consumer = consumer
        self._batch = batch_size
        self._claim_idle_ms = max(1, int(claim_idle * 1000))
        # Look for idle entries a few times per idle period: an entry is
        # then claimed at most a fraction of claim_idle after it qualifies.
        self._claim_every = claim_idle / 4
        self._max_deliveries = max_deliveries
        self._backoff = backoff
        self._counters = counters
        self._ready = ready

    async def run(self) -> None:
        joined = recovered = False
        # The group is first made at the stream's end. Made again later,
        # because it vanished (a Redis that lost its data), it starts from the
        # beginning of what the stream now holds: that was written since, and
        # must not be skipped.
        group_start = "$"
        next_claim = 0.0
        while True:
            async with self._backoff.retrying("reading the group"):
                try:
                    if not joined:
                        await ensure_group(self._client, self._stream, self._group, group_start)
                        group_start = "0"
                        joined = True
                        self._ready()
                    if not self._delivery.accepting():
                        # A disabled bus publishes nothing: entries read now
                        # could only be declined. Leave them to other nodes.
                        await asyncio.sleep(BLOCK_MS / 1000)
                        continue
                    if not recovered:
                        await self._reread_own_pending()
                        recovered = True
                    if monotonic() >= next_claim:
                        await self._claim_idle()
                        next_claim = monotonic() + self._claim_every
                    block = min(BLOCK_MS, max(1, int(self._claim_every * 1000)))
                    entries = await read_group(
                        self._client, self._stream, self._group, self._consumer, ">", self._batch, block
                    )
                    await self._settle(entries, first_delivery=True)
                except ResponseError as exc:
                    if not str(exc).startswith("NOGROUP"):
                        raise
                    # The stream or group went away (a Redis that lost its
                    # data, or someone deleted the key): make it again.
                    logger.warning("redis bridge: group %s on %s is gone; creating it again", self._group, self._stream)
                    joined = recovered = False
            if self._backoff.in_outage:
                joined = recovered = False  # acks may have been lost: re-read pending

    async def _reread_own_pending(self) -> None:
        after = b"0-0"
        while True:
            entries = await read_group(
                self._client, self._stream, self._group, self._consumer, after, self._batch, None
            )
            if not entries:
                return
            await self._settle(entries, first_delivery=False)
            after = entries[-1][0]

    async def _claim_idle(self) -> None:
        cursor = b"0-0"
        while True:
            cursor, entries, deleted = await claim_idle(
                self._client, self._stream, self._group, self._consumer, self._claim_idle_ms, cursor, self._batch
            )
            if deleted:
                # Trimmed from the stream (maxlen) before anyone handled them.
                self._counters.lost_to_trim += len(deleted)
                logger.error(
                    "redis bridge: %d pending entr(ies) of %s were trimmed before delivery (raise maxlen)",
                    len(deleted),
                    self._stream,
                )
            if entries:
                self._counters.claimed += len(entries)
                await self._settle(entries, first_delivery=False)
            if cursor == b"0-0":
                break
        await self._forget_gone_consumers()

    async def _forget_gone_consumers(self) -> None:
        """Delete consumers that hold nothing and were not heard of for long.

        Every process that starts with the default consumer name (its node
        id) joins under a new name; without this the group's list of
        consumers would only grow. Deleting one that holds no pending entry
        loses nothing, and a live one is simply made again by its next read.
        """
        forget_ms = max(FORGET_CONSUMERS_AFTER, 10 * self._claim_idle_ms / 1000) * 1000
        for consumer in await group_consumers(self._client, self._stream, self._group):
            name = consumer["name"]
            if consumer["pending"] == 0 and consumer["idle"] > forget_ms and name != self._consumer.encode():
                await self._client.xgroup_delconsumer(self._stream, self._group, name)
                logger.info(
                    "redis bridge: forgot consumer %s of group %s (idle, nothing pending)", describe(name), self._group
                )

    async def _settle(self, entries: list[Entry], *, first_delivery: bool) -> None:
        """Deliver a batch, then acknowledge what is settled in one call."""
        if not entries:
            return
        async with self._delivery.gate.batch():
            await self._settle_batch(entries, first_delivery)

    async def _settle_batch(self, entries: list[Entry], first_delivery: bool) -> None:
        counts = (
            {}
            if first_delivery
            else await delivery_counts(self._client, self._stream, self._group, self._consumer, entries)
        )
        done: list[bytes] = []
        todo: list[Entry] = []
        for entry_id, fields in entries:
            deliveries = counts.get(entry_id, 1)
            if not fields:  # pending, but deleted from the stream
                done.append(entry_id)
            elif deliveries > self._max_deliveries:
                await self._delivery.dead_letter(
                    entry_id, fields, "max_deliveries", f"delivered {deliveries - 1} times without success"
                )
                done.append(entry_id)
            else:
                todo.append((entry_id, fields))
        if todo:
            done += await self._delivery.deliver(todo)
        if done:
            await self._client.xack(self._stream, self._group, *done)
