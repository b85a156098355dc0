"""One run of a bridge -- from start to stop, on one loop -- and what it counts.

A :class:`Session` owns the client and the two tasks of a run: the *writer*
(:mod:`._outbound`) and the *reader* (:mod:`._inbound`; for a bridge that
only writes, a task that just waits for Redis to answer). Stopping is the
delicate part, so it lives here in one place, in this order: the reader
finishes the batch in hand and the one it read ahead, if any (delivered,
acknowledged, remembered); the outlet
goes (after that batch, so events its receivers published still go out);
the writer empties the buffer; whatever is left is counted as dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING, Any

from ._connection import Backoff, Client, ensure_group
from ._delivery import Delivery, SeenIds
from ._inbound import Cursor, GroupReader, read_broadcast
from ._outbound import Outbox, write_forever
from ._wire import Fields

if TYPE_CHECKING:
    from .. import Event, EventBus

__all__ = ["Counters", "Session", "Settings"]

logger = logging.getLogger("blinker_events.redis")


class Counters:
    """What a bridge counts; ``RedisBridge.stats`` reports them."""

    __slots__ = (
        "auth_failures",
        "claimed",
        "connection_errors",
        "dead_lettered",
        "delivered",
        "dropped",
        "duplicates",
        "errors",
        "failed",
        "ignored",
        "lost_to_trim",
        "malformed",
        "published",
        "reconnects",
        "skipped_own",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    # Declared for type checkers; set in __init__.
    auth_failures: int
    claimed: int
    connection_errors: int
    dead_lettered: int
    delivered: int
    dropped: int
    duplicates: int
    errors: int
    failed: int
    ignored: int
    lost_to_trim: int
    malformed: int
    published: int
    reconnects: int
    skipped_own: int


@dataclass(frozen=True, slots=True)
class Settings:
    """A bridge's configuration, as a run needs it (node and consumer made)."""

    stream: str
    mode: str
    direction: str
    group: str | None
    consumer: str | None
    node: str
    maxlen: int | None
    dead_letter_stream: str
    max_payload: int
    claim_idle: float
    max_deliveries: int
    batch_size: int


@dataclass(frozen=True, slots=True)
class Shared:
    """What outlives a run: kept by the bridge, handed to each session."""

    bus: EventBus
    outbox: Outbox
    counters: Counters
    seen: SeenIds
    #: Where the broadcast reader is (resumed after a restart).
    position: Cursor
    wanted: Callable[[Event], bool]


class Session:
    """The client and tasks of one run; see the module docstring."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: Client,
        settings: Settings,
        shared: Shared,
        on_lost: Callable[[Session], object],
        *,
        on_bus_loop: bool,
    ) -> None:
        self.loop = loop
        self.client = client
        self.settings = settings
        self.shared = shared
        #: Called (on the loop) if the tasks are cancelled by anyone but
        #: close(): the loop is going away without a stop.
        self._on_lost = on_lost
        self.closing = False
        #: What :meth:`close` dropped unwritten, once it ran (also if it was cut short).
        self.dropped = 0
        self._lost = False  # the loop cancelled the tasks without a close()
        #: Whether the loop is the bus's loop thread (``start()``) rather than
        #: the app's (``start_async()``).
        self.on_bus_loop = on_bus_loop
        self.ready = asyncio.Event()
        #: Set when Redis refused the credentials (the tasks keep trying).
        self.refused = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None
        self.writer: asyncio.Task[None] | None = None
        self.in_hand: list[Fields] = []  # the writer's batch in flight
        self.delivery: Delivery | None = None  # the reader's, once it has one
        self.wake: asyncio.Event | None = None
        self.finishing = asyncio.Event()

    def start(self) -> None:
        """Start the tasks (on :attr:`loop`)."""
        settings, shared = self.settings, self.shared
        name = f"{settings.stream}@{settings.node}"
        if settings.direction != "in":
            self.wake = shared.outbox.attach(self.loop)
            self.writer = self._spawn(
                write_forever(
                    self.client,
                    shared.outbox,
                    self.wake,
                    settings.stream,
                    settings.maxlen,
                    settings.batch_size,
                    Backoff(shared.counters, name, self.refused.set),
                    shared.counters,
                    self.in_hand,
                    self.finishing,
                )
            )
        self.reader = self._spawn(self._read(Backoff(shared.counters, name, self.refused.set)))

    async def started(self, timeout: float | None) -> bool:
        """Wait until the run is ready (True), or Redis refused its
        credentials or ``timeout`` passed (False): a wrong password is
        reported at once rather than waited out."""
        waits = [asyncio.ensure_future(self.ready.wait()), asyncio.ensure_future(self.refused.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return self.ready.is_set()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        # In a context of their own: started from a receiver (or a request),
        # the tasks would otherwise carry its cycle-guard chain and framework
        # context through every delivery for the rest of their life.
        return self.loop.create_task(self._watched(work), context=contextvars.Context())

    async def _watched(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            if not self.closing:
                self.closing = self._lost = True
                self._on_lost(self)
            raise
        finally:
            me = asyncio.current_task()
            if self._lost and all(task.done() for task in (self.reader, self.writer) if task not in (None, me)):
                # The last task of a run its loop took away closes the
                # connection: no close() will, and an open one warns
                # (ResourceWarning) when it is collected.
                await _close_quietly(self.client)

    async def _read(self, backoff: Backoff) -> None:
        settings, shared, ready = self.settings, self.shared, self.ready.set
        if settings.direction == "out":
            while not self.ready.is_set():  # nothing to read: just see Redis answer
                async with backoff.retrying("connecting"):
                    if settings.group is not None:
                        # A producer makes the group too: what it writes from
                        # now on reaches the group even if no consumer started.
                        await ensure_group(self.client, settings.stream, settings.group)
                    else:
                        await self.client.ping()
                    ready()
            return
        self.delivery = delivery = Delivery(
            shared.bus,
            self.client,
            node=settings.node,
            stream=settings.stream,
            dead_letter_stream=settings.dead_letter_stream,
            maxlen=settings.maxlen,
            wanted=shared.wanted,
            skip_own=settings.mode == "broadcast",
            max_bytes=settings.max_payload,
            seen=shared.seen,
            counters=shared.counters,
            via_worker=self.on_bus_loop,
        )
        if settings.group is None:
            await read_broadcast(
                self.client,
                delivery,
                settings.stream,
                shared.position,
                settings.batch_size,
                backoff,
                shared.counters,
                ready,
            )
            return
        assert settings.consumer is not None
        reader = GroupReader(
            self.client,
            delivery,
            stream=settings.stream,
            group=settings.group,
            consumer=settings.consumer,
            batch_size=settings.batch_size,
            claim_idle=settings.claim_idle,
            max_deliveries=settings.max_deliveries,
            backoff=backoff,
            counters=shared.counters,
            ready=ready,
        )
        await reader.run()

    async def close(self, timeout: float | None, reading_done: Callable[[], object]) -> int:
        """Stop in order (module docstring), within one ``timeout`` for all;
        ``reading_done`` runs once the reader has stopped. Returns how many
        events were dropped unwritten -- counted even if this close is itself
        cancelled (a loop stopping under it)."""
        self.closing = True
        try:
            await self._stop_tasks(timeout, reading_done)
        finally:
            dropped = self.dropped = self.abandon("stopped before Redis took them")
            # Also when cut short (a bus shutdown from a receiver stops the
            # loop under it): the connection must not be left open.
            await _close_quietly(self.client)
        return dropped

    async def _stop_tasks(self, timeout: float | None, reading_done: Callable[[], object]) -> None:
        deadline = None if timeout is None else monotonic() + timeout
        if self.reader is not None:
            if self.delivery is not None:
                # Let the batch in hand finish in time; a blocking read is cut.
                self.delivery.gate.stopping = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.delivery.gate.idle.wait(), _left(deadline))
            if not await _cancel(self.reader, _left(deadline)):
                # On an app's own loop a single async receiver runs in the
                # reader's task (docs/timeouts.md), and this one ignores its
                # cancellation: the stop keeps its timeout without it.
                logger.warning(
                    "redis bridge: the reader did not end within the stop's timeout (a receiver ignoring its "
                    "cancellation?); it is cancelled until it ends, and the bridge stops without it"
                )
        reading_done()
        if self.writer is not None and self.wake is not None:
            # The writer empties the buffer, then ends; past the deadline it is
            # cut off and what it did not write is counted below.
            self.finishing.set()
            self.wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.writer), _left(deadline))
            await _cancel(self.writer)

    def abandon(self, reason: str) -> int:
        """Count (and log) what this run leaves unwritten; returns how many."""
        outbox = self.shared.outbox
        unsent = len(self.in_hand)
        self.in_hand.clear()
        outbox.count_dropped(unsent)
        if unsent:
            logger.error("redis bridge: %s: dropped %d event(s) being written", reason, unsent)
        outbox.detach()
        return unsent + outbox.drop_all(reason)


async def _close_quietly(client: Client) -> None:
    # A run that is ending: a connection that fails to close (Redis gone,
    # say) is gone anyway, and nothing is lost with it.
    try:
        await client.aclose()
    except Exception:
        logger.debug("redis bridge: closing the connection failed", exc_info=True)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - monotonic())


async def _cancel(task: asyncio.Task[None], within: float | None = None) -> bool:
    """Cancel ``task`` and wait for it to end (True). Cancelling again until
    it does: on Python 3.11 ``asyncio.wait_for`` (which redis-py uses to
    write) swallows a cancellation that lands as its inner future completes.
    With ``within``, past that many seconds (after one round at least) it
    stops waiting and returns False, and the cancelling goes on in a task of
    its own until ``task`` ends."""
    until = None if within is None else monotonic() + within
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
        if until is not None and monotonic() >= until and not task.done():
            canceller = asyncio.ensure_future(_cancel(task))
            _CANCELLERS.add(canceller)
            canceller.add_done_callback(_CANCELLERS.discard)
            return False
    if not task.cancelled() and task.exception() is not None:
        logger.error("redis bridge: a task had failed", exc_info=task.exception())
    return True


#: The cancellers :func:`_cancel` left running (a task nobody holds may be
#: collected before it ends).
_CANCELLERS: set[asyncio.Future[bool]] = set()
