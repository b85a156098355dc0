"""Outbound: the buffer publishers fill and the task that writes it to Redis.

Two roles meet here. *Publishers* -- any thread, any loop -- call
:meth:`Outbox.put` from the bus's outlet hook; it must never block and never
raise. The *writer* is one task on the bridge's loop that takes batches off
the buffer and writes each with one round trip. While Redis is down the
writer retries the batch in hand with backoff and the buffer keeps filling
up to its bound; past the bound events are dropped, counted and logged,
never waited for.

A batch is written with one call of a small Lua script (:data:`XADD_BATCH`)
that XADDs each entry in order, with the fields and ``maxlen`` a pipeline of
XADDs would give, and answers each entry's id or Redis's refusal: redis-py
then packs one command instead of one per entry, which is most of what a
write costs this process. A server that does not run it (an ACL without
EVALSHA, a Redis-like server without Lua) gets the pipeline of XADDs.

A write that failed may still have reached Redis (the reply was lost, or
stalled past ``socket_timeout``). Before writing such a batch again the
writer reads back what it wrote since the first attempt and leaves out the
entries already there, so a retry never puts an event in the stream twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, cast

from redis.exceptions import NoPermissionError, NoScriptError, ResponseError

from ..lowlevel import describe, running_loop
from ._connection import CONNECTION_ERRORS, Entry
from ._wire import TRACE, VERSION, Fields

if TYPE_CHECKING:
    from ._connection import Backoff, Client
    from ._session import Counters

__all__ = ["XADD_BATCH", "BatchWriter", "Outbox", "write_forever"]

logger = logging.getLogger("blinker_events.redis")

#: Seconds between two log lines about dropped events during one outage.
DROP_LOG_INTERVAL = 1.0
#: Seconds the writer spends writing what is left when its loop goes away
#: without a stop().
LAST_FLUSH_SECONDS = 2.0
#: Seconds before a failed write's first attempt that its read-back starts,
#: for Redis's clock stepping back and forth meanwhile.
READ_BACK_MARGIN = 5.0
#: Entries per page when a failed write is read back.
READ_BACK_PAGE = 200
#: Event bytes per call of XADD_BATCH (at least one entry each): Redis holds
#: a whole command in its query buffer before it runs it.
SCRIPT_CHUNK_BYTES = 1_000_000

#: XADD each entry of a batch, in order: KEYS[1] the stream; ARGV: maxlen
#: ("" for none), the envelope version, the origin, then type and event of
#: each entry. Answers, per entry, its id or "!" and Redis's refusal (pcall:
#: one refused entry does not stop the others, as in a pipeline).
XADD_BATCH = """
local stream, maxlen, version, origin = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV, 2 do
  local r
  if maxlen == '' then
    r = redis.pcall('XADD', stream, '*', 'v', version, 'origin', origin, 'type', ARGV[i], 'event', ARGV[i + 1])
  else
    r = redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, '*',
                    'v', version, 'origin', origin, 'type', ARGV[i], 'event', ARGV[i + 1])
  end
  if type(r) == 'table' and r.err then r = '!' .. r.err end
  out[#out + 1] = r
end
return out
"""
_XADD_BATCH_SHA = hashlib.sha1(XADD_BATCH.encode()).hexdigest()


class Outbox:
    """A bounded FIFO of encoded entries, filled from any thread.

    When it is full, a publisher waits for room -- up to ``put_timeout``
    seconds, None: without limit -- as long as Redis is taking writes: a publisher faster than
    Redis is slowed to its pace, not made to lose events. While Redis is
    unreachable (``healthy`` False), or on the writer's own loop, which a
    wait would stall, a full buffer drops the new event instead.
    """

    def __init__(self, limit: int, put_timeout: float | None, counters: Counters) -> None:
        self.limit = limit
        self.put_timeout = put_timeout
        self._counters = counters
        self._items: deque[Fields] = deque()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        # True while a wake-up is on its way to the writer: publishers then
        # skip call_soon_threadsafe, which costs a write to the loop's pipe.
        self._wake_pending = False
        #: Set by the writer: False from a failed write until the next good one.
        self.healthy = True
        self._last_drop_log = 0.0
        self._unlogged_drops = 0

    def attach(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        """Bind to the writer's loop (on it); returns the writer's wake-up."""
        wake = asyncio.Event()
        with self._lock:
            self._loop, self._wake = loop, wake
            self._wake_pending = bool(self._items)
            self.healthy = True
        if self._items:
            wake.set()
        return wake

    def detach(self) -> None:
        with self._lock:
            self._loop = self._wake = None
            self._room.notify_all()  # nobody will make room any more

    def put(self, fields: Fields) -> None:
        """Buffer one entry (publisher threads); never raises."""
        with self._lock:
            if len(self._items) >= self.limit and self._may_wait():
                self._room.wait_for(lambda: len(self._items) < self.limit or not self._may_wait(), self.put_timeout)
            if len(self._items) >= self.limit:
                self._dropped_one(fields)
                return
            self._items.append(fields)
            loop = self._loop if not self._wake_pending else None
            if loop is not None:
                self._wake_pending = True
            wake = self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed; stop() counts what is left
                loop.call_soon_threadsafe(wake.set)

    def _may_wait(self) -> bool:
        # Never on a thread that runs an event loop (the writer's, or an async
        # app's): blocking it would stall everything on it.
        return self.healthy and self._loop is not None and running_loop() is None

    def _dropped_one(self, fields: Fields) -> None:
        """Count a drop; log it unless one was logged within the last second
        (lock held; an outage at full speed would flood the log)."""
        self._counters.dropped += 1
        self._unlogged_drops += 1
        now = monotonic()
        if now - self._last_drop_log < DROP_LOG_INTERVAL:
            return
        dropped, self._unlogged_drops, self._last_drop_log = self._unlogged_drops, 0, now
        logger.warning(
            "redis bridge: outbound buffer full (%d entries, Redis %s): dropped %d event(s), the latest %s; "
            "%d dropped in all",
            self.limit,
            "slow" if self.healthy else "unreachable",
            dropped,
            fields[b"event"][:80].decode(errors="replace"),
            self._counters.dropped,
        )

    def set_healthy(self, healthy: bool) -> None:
        """(Writer.) Whether Redis takes writes; publishers waiting for room
        stop waiting once it does not. Also logs the drops the rate limit
        held back, so that every drop is logged in the end."""
        with self._lock:
            if self.healthy != healthy:
                self.healthy = healthy
                self._room.notify_all()
            held_back, self._unlogged_drops = self._unlogged_drops, 0
        if held_back:
            logger.warning("redis bridge: %d more event(s) were dropped (buffer full)", held_back)

    def take(self, n: int) -> list[Fields]:
        """Up to ``n`` entries, oldest first (writer)."""
        with self._lock:
            self._wake_pending = False
            items = self._items
            taken = [items.popleft() for _ in range(min(n, len(items)))]
            if taken:
                self._room.notify_all()
            return taken

    def forget(self) -> None:
        """(In a forked child.) Empty, unbound, with a fresh lock: the
        entries are the parent's to write."""
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._items.clear()
        self._loop = self._wake = None
        self._wake_pending = False

    def count_dropped(self, n: int) -> None:
        """Count ``n`` events lost on the way (under the lock publishers
        count their drops under: ``+=`` is not atomic across threads)."""
        with self._lock:
            self._counters.dropped += n

    def drop_all(self, reason: str) -> int:
        """Drop and count what is still buffered; returns how many."""
        with self._lock:
            count = len(self._items)
            self._items.clear()
            self._counters.dropped += count
            self._room.notify_all()
            held_back, self._unlogged_drops = self._unlogged_drops, 0
        if held_back:
            logger.warning("redis bridge: %d more event(s) were dropped (buffer full)", held_back)
        if count:
            logger.error("redis bridge: %s: dropped %d buffered event(s)", reason, count)
        return count

    def __len__(self) -> int:
        return len(self._items)


async def write_forever(
    client: Client,
    outbox: Outbox,
    wake: asyncio.Event,
    stream: str,
    maxlen: int | None,
    batch_size: int,
    backoff: Backoff,
    counters: Counters,
    in_hand: list[Fields],
    finishing: asyncio.Event,
) -> None:
    """The writer task. ``in_hand`` holds the batch being written, so that
    whoever cancels this task can count it if it never got written. Once
    ``finishing`` is set (and ``wake`` with it) the task returns as soon as
    the buffer is empty."""
    #: When the batch in hand was first sent (monotonic), if it was.
    sent_at: float | None = None
    writer = BatchWriter(client, stream, maxlen)
    try:
        while True:
            if not in_hand:
                sent_at = None
                wake.clear()
                in_hand.extend(outbox.take(batch_size))
                if not in_hand:
                    if finishing.is_set():
                        return
                    await wake.wait()
                    continue
            if backoff.in_outage:
                outbox.set_healthy(False)
            async with backoff.retrying("writing events"):
                if sent_at is None:
                    sent_at = monotonic()
                else:  # an earlier attempt failed: it may have written some
                    await _leave_out_written(client, stream, in_hand, monotonic() - sent_at, counters)
                await writer.write(in_hand, outbox, counters)
    except asyncio.CancelledError:
        if finishing.is_set():
            raise  # stop() cut the flush short; it counts what is left
        # Cancelled without stop(): the loop is going away (say, asyncio.run
        # returning in an app that never called stop_async). Write what can
        # be written in a moment; whatever is left is counted by the stop at
        # interpreter exit.
        await _last_flush(writer, outbox, batch_size, counters, in_hand, sent_at)
        raise


class BatchWriter:
    """Writes batches of entries to one stream: one script call per
    :data:`SCRIPT_CHUNK_BYTES` of events, or one pipeline of XADDs."""

    def __init__(self, client: Client, stream: str, maxlen: int | None) -> None:
        self.client = client
        self.stream = stream
        self._maxlen = maxlen
        #: Whether to use the script (False once the server refused it), and
        #: whether the server has it (EVALSHA then, else EVAL, which loads it).
        self._scripted = True
        self._loaded = False

    async def write(self, in_hand: list[Fields], outbox: Outbox, counters: Counters) -> None:
        """Write the batch in hand, then empty it. What is written leaves
        it as it is written (a chunk at a time): if a later chunk fails, the
        retry is only about what is left. Raises only connection errors."""
        while in_hand:
            chunk = self._chunk(in_hand)
            results = await self._run_script(in_hand, chunk, counters) if self._scripted else None
            if results is None:
                chunk = len(in_hand)
                results = await self._pipeline(in_hand)
            failed = [r for r in results if isinstance(r, Exception)]
            counters.published += chunk - len(failed)
            if failed:
                # Redis answered, and refused: retrying cannot help.
                outbox.count_dropped(len(failed))
                logger.error("redis bridge: Redis refused %d event(s): %s", len(failed), describe(failed[0]))
            del in_hand[:chunk]
        outbox.set_healthy(True)

    @staticmethod
    def _chunk(in_hand: list[Fields]) -> int:
        """How many of the first entries go in one script call: up to
        SCRIPT_CHUNK_BYTES of events (at least one entry), all of this
        version and of the first one's origin (the script writes those once
        for all), and none with a trace context (which the script does not
        write: traced entries go through the pipeline)."""
        origin = in_hand[0][b"origin"]
        size = 0
        for count, fields in enumerate(in_hand):
            size += len(fields[b"event"])
            if count and (
                size > SCRIPT_CHUNK_BYTES or fields[b"origin"] != origin or fields[b"v"] != VERSION or TRACE in fields
            ):
                return count
        return len(in_hand)

    async def _run_script(self, in_hand: list[Fields], chunk: int, counters: Counters) -> list[object] | None:
        """The results of writing the first ``chunk`` entries with the
        script, or None: write them with the pipeline instead."""
        first = in_hand[0]
        if first[b"v"] != VERSION or TRACE in first:
            return None  # the script writes the four plain fields; a traced entry has a fifth
        args: list[bytes | int | str] = ["" if self._maxlen is None else self._maxlen, VERSION, first[b"origin"]]
        for fields in in_hand[:chunk]:
            args += (fields[b"type"], fields[b"event"])
        try:
            answer = await self._call(args)
            if not isinstance(answer, list) or len(answer) != chunk:  # cannot happen; never count blindly
                raise ResponseError(f"the batch script answered {describe(answer)} for {chunk} entries")
        except ResponseError as exc:
            if isinstance(exc, NoPermissionError) or "unknown command" in str(exc).lower():
                # This server, or this user, runs no scripts: pipelines from now on.
                logger.info("redis bridge: writing with pipelined XADDs (the server refused the script: %s)", exc)
                self._scripted = False
            else:  # unexpected; the script may have written some: look first
                logger.warning("redis bridge: the batch script failed (%s); writing with XADDs", describe(exc))
                await _leave_out_written(self.client, self.stream, in_hand, 0.0, counters)
            return None
        return [ResponseError(r[1:].decode(errors="replace")) if r[:1] == b"!" else r for r in answer]

    async def _call(self, args: list[bytes | int | str]) -> object:
        # EVAL the first time (and after a SCRIPT FLUSH or a restart): it
        # loads the script and runs it in one round trip, so a first write
        # whose reply is lost has written like any other.
        if self._loaded:
            try:
                return await self.client.evalsha(_XADD_BATCH_SHA, 1, self.stream, *args)
            except NoScriptError:
                self._loaded = False
        answer = await self.client.eval(XADD_BATCH, 1, self.stream, *args)
        self._loaded = True
        return answer

    async def _pipeline(self, in_hand: list[Fields]) -> list[object]:
        pipe = self.client.pipeline(transaction=False)
        for fields in in_hand:
            pipe.xadd(self.stream, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
        return cast("list[object]", await pipe.execute(raise_on_error=False))


async def _leave_out_written(
    client: Client, stream: str, in_hand: list[Fields], since: float, counters: Counters
) -> None:
    """Take out of ``in_hand`` the entries an attempt ``since`` seconds ago
    wrote after all, counting them as published.

    Redis gives an entry an id no lower than its own clock at the write, so
    the entries of that attempt are all at or after Redis's time now less
    ``since`` (less a margin for a clock that steps). An entry of ours
    is recognised by its origin and its event's exact bytes, which hold the
    event id. What is read back is bounded by the stream (``maxlen``)."""
    if not in_hand:
        return
    seconds, micros = await client.time()
    floor = max(0, seconds * 1000 + micros // 1000 - int((since + READ_BACK_MARGIN) * 1000))
    ours = {fields[b"event"] for fields in in_hand}
    origin = in_hand[0][b"origin"]
    found: set[bytes] = set()
    start = f"{floor}-0"
    while True:
        page = cast("list[Entry]", await client.xrange(stream, min=start, count=READ_BACK_PAGE))
        found.update(f[b"event"] for _, f in page if f.get(b"origin") == origin and f.get(b"event") in ours)
        if len(page) < READ_BACK_PAGE:
            break
        start = "(" + page[-1][0].decode()
    if found:
        kept = [fields for fields in in_hand if fields[b"event"] not in found]
        counters.published += len(in_hand) - len(kept)
        logger.warning(
            "redis bridge: %d of %d event(s) whose write failed had reached Redis; not written again",
            len(in_hand) - len(kept),
            len(in_hand),
        )
        in_hand[:] = kept


async def _last_flush(
    writer: BatchWriter,
    outbox: Outbox,
    batch_size: int,
    counters: Counters,
    in_hand: list[Fields],
    sent_at: float | None,
) -> None:
    """Write what is left in a moment. A batch in hand whose write was cut
    off (``sent_at``: when it was first sent) may be in Redis already."""
    deadline = monotonic() + LAST_FLUSH_SECONDS
    try:
        if in_hand and sent_at is not None:
            await asyncio.wait_for(
                _leave_out_written(writer.client, writer.stream, in_hand, monotonic() - sent_at, counters),
                LAST_FLUSH_SECONDS,
            )
        while (in_hand or len(outbox)) and monotonic() < deadline:
            if not in_hand:
                in_hand.extend(outbox.take(batch_size))
            await asyncio.wait_for(writer.write(in_hand, outbox, counters), deadline - monotonic())
    except (*CONNECTION_ERRORS, asyncio.CancelledError) as exc:
        logger.error("redis bridge: the last flush before the loop closed failed: %r", exc)
