"""Inbound: reading the stream and publishing what it carries on the bus.

The *reader* is one task on the bridge's loop. It takes entries in batches
and hands each batch to a :class:`~._delivery.Delivery`, which publishes the
events on the bus in stream order -- every guard of the bus applies --
marked with their origin, so that no bridge forwards them again.

Broadcast mode (:func:`read_broadcast`): XREAD from the last id this bridge
saw, so after a reconnect it resumes where it stopped; a node skips its own
entries, whose receivers ran when they were published.

Both modes count entries that ``maxlen`` trimmed before they were read
(``lost_to_trim``): every read of new entries is made in one transaction
with the stream's counts (Redis 7's ``entries-added``), so a gap is seen as
it is crossed. Transactions cannot wait, so a reader with nothing to read
waits with a plain XREAD for an entry newer than it saw, then reads it in
the transaction.

Group mode (:class:`GroupReader`): XREADGROUP hands each entry to one
consumer of the group. An entry is acknowledged only once its delivery
here succeeded; one that failed stays pending and is claimed again (XAUTOCLAIM)
once idle for ``claim_idle`` seconds, by whichever node gets there first --
which also rescues entries of a node that died. After ``max_deliveries``
an entry goes to the dead-letter stream instead. On start and after every
reconnect the node first re-reads its own pending entries: those it handled
but whose acknowledgement was lost are recognised by event id and only
acknowledged.

A group reader that is behind (its batch was full, and the last full one
took under a quarter of ``claim_idle``) reads the next batch while it
delivers this one, so the round trip overlaps the receivers' work;
the acknowledgement of the batch before goes in the same transaction, sent
before this batch's receivers start: still only once its receivers ran, and
a crash leaves at most a batch handled but not acknowledged, as before. A batch read ahead is in hand
like the one before it: a graceful stop delivers it too, and an error gives
it up to the re-read of this consumer's pending entries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING

from redis.exceptions import ResponseError

from ..lowlevel import describe
from ._connection import (
    Entry,
    acknowledge,
    claim_idle,
    delivery_counts,
    ensure_group,
    group_consumers,
    read_entries,
    read_group,
    read_new_in_group,
    read_with_info,
    stream_info,
)

if TYPE_CHECKING:
    from ._connection import Backoff, Client
    from ._delivery import Delivery
    from ._session import Counters

__all__ = ["Cursor", "GroupReader", "read_broadcast"]

logger = logging.getLogger("blinker_events.redis")

#: How long one blocking read waits before the reader looks around (ms).
BLOCK_MS = 1000
#: Seconds a consumer with nothing pending may stay silent before the group
#: forgets it (at least ten times ``claim_idle``).
FORGET_CONSUMERS_AFTER = 3600.0


class Cursor:
    """Where a broadcast reader is in the stream; outlives a run, so that a
    restarted bridge resumes from it. ``id``: the last entry seen (None:
    not started, start at the stream's end). ``offset``: how many entries
    the stream had taken up to it (Redis's ``entries-added``): the entries
    below the stream's trimmed head beyond it were lost to this reader."""

    __slots__ = ("id", "offset")

    def __init__(self) -> None:
        self.id: bytes | None = None
        self.offset = 0


async def read_broadcast(
    client: Client,
    delivery: Delivery,
    stream: str,
    cursor: Cursor,
    batch_size: int,
    backoff: Backoff,
    counters: Counters,
    ready: Callable[[], None],
) -> None:
    """The broadcast reader, from ``cursor`` on."""
    while True:
        async with backoff.retrying("reading the stream"):
            if cursor.id is None:
                # Start at the stream's end rather than XREAD's "$": that
                # would miss what is written before the first read blocks.
                info = await stream_info(client, stream)
                cursor.id = b"0-0" if info is None else info["last-generated-id"]
                cursor.offset = 0 if info is None else info.get("entries-added") or 0
            info, entries = await read_with_info(client, stream, cursor.id, batch_size)
            # Ready once Redis answered: a restarted reader knows its cursor
            # already, and must not say it is connected before it is.
            ready()
            if info is not None:
                _passed_trimmed(info, cursor, counters, stream)
            if not entries:
                await read_entries(client, stream, cursor.id, 1, BLOCK_MS)  # a wake-up only
                continue
            async with delivery.gate.batch():
                # No retries in broadcast mode: a failed delivery is
                # counted and logged, and the reader moves on.
                await delivery.deliver(entries)
                cursor.id = entries[-1][0]
                cursor.offset += len(entries)


def _passed_trimmed(info: dict[str, object], cursor: Cursor, counters: Counters, stream: str) -> None:
    """Count the entries trimmed below the cursor's next read, from the
    stream's counts taken with that read (an entry deleted with XDEL before
    it was read counts too, and so does a trimmed entry of this node's)."""
    added, length = info.get("entries-added"), info.get("length")
    if not isinstance(added, int) or not isinstance(length, int):
        return  # a Redis before 7 does not say
    if added < cursor.offset:  # the stream was made anew (Redis lost its data)
        cursor.offset = added
        return
    head = added - length
    if head > cursor.offset:
        _count_trimmed(counters, head - cursor.offset, stream, "before this node read them")
        cursor.offset = head


def _count_trimmed(counters: Counters, lost: int, stream: str, when: str) -> None:
    """Count and log entries ``maxlen`` trimmed before their delivery; ``lost``
    is -1 when Redis cannot tell how many (then at least one)."""
    counters.lost_to_trim += max(lost, 1)
    logger.error(
        "redis bridge: %s entr(ies) of %s were trimmed %s (raise maxlen)",
        lost if lost > 0 else "at least 1",
        stream,
        when,
    )


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
        # A batch read ahead waits, pending here, while the batch in hand is
        # delivered: it must not sit idle long enough for another consumer
        # to claim it and run it too. So the reader reads ahead only while a
        # full batch takes under a quarter of claim_idle; the first one is
        # timed before any is read ahead of it.
        self._read_ahead_under = claim_idle / 4
        self._batch_took = float("inf")
        self._max_deliveries = max_deliveries
        self._backoff = backoff
        self._counters = counters
        self._ready = ready
        #: New entries read while the worker ran the batch before them (or
        #: what that read raised), delivered next; see ``_read_ahead``.
        self._ahead: list[Entry] | Exception | None = None
        #: Ids handled and not acknowledged yet: while a batch is read
        #: ahead, a batch's acknowledgement goes with the next read.
        self._unacked: list[bytes] = []

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
                        # could only be declined. Leave them to other nodes
                        # (a batch read ahead too: it is re-read, once enabled).
                        if self._ahead is not None:
                            await self._flush_acks()  # before they could be claimed elsewhere
                            self._give_up_ahead()
                            recovered = False
                        await asyncio.sleep(BLOCK_MS / 1000)
                        continue
                    if not recovered:
                        await self._reread_own_pending()
                        recovered = True
                    if monotonic() >= next_claim:
                        await self._claim_idle()
                        next_claim = monotonic() + self._claim_every
                    ahead, self._ahead = self._ahead, None
                    if isinstance(ahead, Exception):
                        raise ahead
                    if ahead:
                        self._delivery.gate.holding = False  # in hand now, as any batch
                        await self._settle(ahead, first_delivery=True, read_ahead=True)
                    elif self._delivery.gate.stopping:
                        # Read nothing more: it would only stay pending
                        # here, until claimed after claim_idle.
                        raise asyncio.CancelledError
                    else:
                        await self._settle(await self._read_new(), first_delivery=True)
                except ResponseError as exc:
                    self._give_up_ahead()
                    if "NOGROUP" not in str(exc):  # in a transaction, the error names the command first
                        raise
                    # The stream or group went away (a Redis that lost its
                    # data, or someone deleted the key): make it again.
                    logger.warning("redis bridge: group %s on %s is gone; creating it again", self._group, self._stream)
                    joined = recovered = False
                except BaseException:
                    self._give_up_ahead()
                    raise
            if self._backoff.in_outage:
                joined = recovered = False  # acks may have been lost: re-read pending

    def _give_up_ahead(self) -> None:
        """After an error: a batch read ahead stays pending here, and the
        retry's re-read of this consumer's pending entries (every error
        counts as an outage) delivers it, once."""
        self._ahead = None
        self._unacked = []  # delivered and remembered: the re-read only acknowledges them
        self._delivery.gate.release()

    async def _read_ahead(self) -> None:
        """Read the next batch while this one is delivered (a task of its
        own): the round trip then costs the reader nothing. Its entries are
        delivered, and acknowledged, only after this batch's; a stop waits
        for them too (the gate stays shut). Never raises: what the read
        raised is raised by the next turn, in its retrying block."""
        gate = self._delivery.gate
        if gate.stopping or not self._delivery.accepting():
            return
        try:
            entries = await self._read_new(wait=False)
        except Exception as exc:
            self._ahead = exc
            return
        if entries:
            self._ahead = entries
            gate.holding = True

    async def _read_new(self, *, wait: bool = True) -> list[Entry]:
        """New entries for this consumer, after counting those trimmed
        before the group read them. If there are none, waits a while for an
        entry newer than the stream's newest, and returns none: the caller's
        next turn reads it (after claiming what is due)."""
        client, stream = self._client, self._stream
        # Taken even if the read fails: an error leads to the re-read of
        # this consumer's pending entries, which acknowledges them.
        ack, self._unacked = self._unacked, []
        lost, newest, entries = await read_new_in_group(client, stream, self._group, self._consumer, self._batch, ack)
        if lost:
            _count_trimmed(self._counters, lost, stream, f"before group {self._group} read them")
        if not entries and wait:
            await read_entries(client, stream, newest, 1, min(BLOCK_MS, max(1, int(self._claim_every * 1000))))
        return entries

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
        # Pending here and idle, but in hand: handled, their acknowledgement
        # held for the next read, or read ahead and delivered next. The claim
        # (of this consumer's own entries too) must neither count them lost
        # when trimmed nor deliver them a second time.
        held = set(self._unacked)
        if isinstance(self._ahead, list):
            held.update(entry_id for entry_id, _ in self._ahead)
        cursor = b"0-0"
        while True:
            cursor, entries, deleted = await claim_idle(
                self._client, self._stream, self._group, self._consumer, self._claim_idle_ms, cursor, self._batch
            )
            deleted = [entry_id for entry_id in deleted if entry_id not in held]
            entries = [entry for entry in entries if entry[0] not in held]
            if deleted:
                # Trimmed from the stream (maxlen) before anyone handled them.
                _count_trimmed(self._counters, len(deleted), self._stream, "while pending, before they were handled")
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

    async def _settle(self, entries: list[Entry], *, first_delivery: bool, read_ahead: bool = False) -> None:
        """Deliver a batch, then acknowledge what is settled in one call."""
        if not entries:
            return
        async with self._delivery.gate.batch(read_ahead=read_ahead):
            await self._settle_batch(entries, first_delivery)

    async def _settle_batch(self, entries: list[Entry], first_delivery: bool) -> None:
        ahead = None
        full = first_delivery and len(entries) == self._batch
        try:
            if full and self._batch_took < self._read_ahead_under:
                # A full batch: the reader is behind, and reads on meanwhile.
                # The read carries the acknowledgement of the batch before
                # this one (held back for it), and is on its way before any
                # receiver of this batch runs: a crash still leaves at most
                # one batch handled but not acknowledged.
                ahead = asyncio.ensure_future(self._read_ahead())
                await asyncio.sleep(0)
            started = monotonic()
            await self._deliver_batch(entries, first_delivery)
            if full:
                self._batch_took = monotonic() - started
        except BaseException:
            if ahead is not None:
                ahead.cancel()
            raise
        if ahead is not None:
            await ahead
        # Left for the next read only when this batch is new entries and one
        # is read ahead: then that read is due at once, before its receivers
        # run. Otherwise (a claim or a re-read too), and before every wait, sent now.
        if not (first_delivery and self._delivery.gate.holding):
            await self._flush_acks()

    async def _deliver_batch(self, entries: list[Entry], first_delivery: bool) -> None:
        counts = (
            {}
            if first_delivery
            else await delivery_counts(self._client, self._stream, self._group, self._consumer, entries)
        )
        done: list[bytes] = []
        todo: list[Entry] = []
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:  # pending here, but trimmed meanwhile: their retry is lost
            _count_trimmed(self._counters, len(gone), self._stream, "while pending, before they were acknowledged")
        for entry_id, fields in entries:
            deliveries = counts.get(entry_id, 1)
            if not fields:
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
        self._unacked += done

    async def _flush_acks(self) -> None:
        if self._unacked:
            await acknowledge(self._client, self._stream, self._group, self._unacked)
            self._unacked = []
