"""Delivery: turning stream entries into local publishes, for both readers.

:class:`Delivery` takes a batch of entries and, in stream order, decodes each
(bad ones go to the dead-letter stream), passes by what is not for this node
(its own entries in broadcast mode, types it does not carry, event ids it
already delivered), publishes the rest on the bus with every guard, and says
which entries are settled. In group mode only a delivery in which every
receiver ran and succeeded settles an entry; anything less leaves it pending
for another attempt, here or on another node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import CancelledError, Future
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, cast

from .. import DeliveryReport, Event, QueueFullError
from ..lowlevel import describe, has_sync_receivers, instrumentation
from ._connection import Entry
from ._wire import WireError, carrier, decode

if TYPE_CHECKING:
    from .. import EventBus
    from ._connection import Client
    from ._session import Counters

__all__ = ["IN_DELIVERY", "Delivery", "Gate", "SeenIds"]

logger = logging.getLogger("blinker_events.redis")

#: What an untraced delivery enters around a publish: nothing.
_UNTRACED = nullcontext()

#: The delivery whose receivers the running code belongs to, if any.
IN_DELIVERY: ContextVar[Delivery | None] = ContextVar("blinker_events.redis.in_delivery", default=None)


class Gate:
    """Lets a graceful stop wait for the batch in hand instead of cutting
    it off: a batch cut off after its receivers ran, but before it was
    acknowledged and its ids remembered, would be delivered again."""

    def __init__(self) -> None:
        self.stopping = False
        self.idle = asyncio.Event()
        self.idle.set()
        #: A batch read ahead (group mode) waits to be delivered: it is in
        #: hand too, so the gate stays shut, and stopping lets it through.
        self.holding = False

    @asynccontextmanager
    async def batch(self, *, read_ahead: bool = False) -> AsyncIterator[None]:
        """Around the handling of one batch (reader task). Once stopping,
        no new batch starts but one read ahead (``read_ahead``: in hand
        already): what was read stays pending (group) or unread (broadcast,
        whose position does not move), and nothing is lost."""
        if self.stopping and not read_ahead:
            raise asyncio.CancelledError
        self.idle.clear()
        try:
            yield
        finally:
            if not self.holding:
                self.idle.set()

    def release(self) -> None:
        """Drop the hold of a batch read ahead (now delivered, or given up)."""
        self.holding = False
        self.idle.set()


class SeenIds(OrderedDict[str, None]):
    """The ids of the last ``size`` events delivered here, oldest dropped
    first: enough to recognise an entry redelivered after a lost ack or
    written twice by a producer that retried. A mapping of its own:
    ``event_id in seen`` is then a C lookup, with no Python call per entry
    read. An OrderedDict, not a dict: a dict's oldest key, once full, is
    found by skipping every slot deleted before it (some 24 us per event
    at the default 100,000 ids), an OrderedDict's in constant time."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size

    def add(self, event_id: str) -> None:
        self[event_id] = None
        if len(self) > self._size:
            self.popitem(last=False)


class Delivery:
    """Turns entries into local publishes; shared by both modes.

    With ``via_worker`` (a bridge started with ``start()``, on the bus's loop
    thread) events that have sync receivers go through the bus's worker
    queue -- the batch queued at once, then awaited in order -- so sync
    receivers run on the worker as for ``publish_nowait``, without a thread
    hop per event. Otherwise (a bridge on the app's own loop) each event is
    ``await bus.publish``-ed, so async receivers run on the app's loop.
    """

    def __init__(
        self,
        bus: EventBus,
        client: Client,
        *,
        node: str,
        stream: str,
        dead_letter_stream: str,
        maxlen: int | None,
        wanted: Callable[[Event], bool],
        skip_own: bool,
        max_bytes: int,
        seen: SeenIds,
        counters: Counters,
        via_worker: bool,
    ) -> None:
        self._bus = bus
        self._client = client
        self._node = node.encode()
        self._stream = stream
        self._dead = dead_letter_stream
        self._maxlen = maxlen
        self._wanted = wanted
        self._skip_own = skip_own
        self._max_bytes = max_bytes
        self._seen = seen
        self._counters = counters
        self._via_worker = via_worker
        #: Group mode: a delivery that did not fully succeed stays pending.
        self._retry = not skip_own
        #: The trace headers of the batch being delivered, by event id (only
        #: while the bus is instrumented).
        self._carriers: dict[str, dict[str, str]] = {}
        self.gate = Gate()

    def accepting(self) -> bool:
        """Whether the bus publishes at all (``bus.disable()`` stops it)."""
        return self._bus.is_enabled()

    async def deliver(self, entries: list[Entry]) -> list[bytes]:
        """Publish the entries' events here, in order. Returns the ids of the
        entries now settled -- delivered, deliberately passed by, or
        dead-lettered -- and leaves out those whose delivery failed, which a
        retry may fix. Raises only connection errors."""
        # Marks everything this delivery runs (the worker copies the context):
        # a receiver that calls the bridge's stop() must not wait for itself.
        IN_DELIVERY.set(self)
        settled: list[bytes] = []
        todo: list[tuple[bytes, Event]] = []
        batch_ids: set[str] = set()
        traced = instrumentation(self._bus) is not None
        for entry_id, fields in entries:
            event = self._admit(entry_id, fields)
            if isinstance(event, WireError):
                await self.dead_letter(entry_id, fields, event.reason, str(event))
                event = None
            if event is None:
                settled.append(entry_id)
                continue
            event_id = event.event_id
            if event_id in batch_ids:  # written twice by a retrying producer
                self._counters.duplicates += 1
                settled.append(entry_id)
            else:
                batch_ids.add(event_id)
                todo.append((entry_id, event))
                if traced:
                    self._carriers[event_id] = carrier(fields)
        try:
            if self._via_worker:
                reports = await self._through_worker([event for _, event in todo], traced)
            else:
                reports = [await self._publish(event, traced) for _, event in todo]
        finally:
            self._carriers.clear()
        for (entry_id, event), outcome in zip(todo, reports, strict=True):
            if self._succeeded(event, outcome):
                settled.append(entry_id)
        return settled

    def _admit(self, entry_id: bytes, fields: Mapping[bytes, bytes]) -> Event | WireError | None:
        """The entry's event if it is to be delivered; else None (counted),
        or the WireError it is dead-lettered for (counted and logged).
        (Not a coroutine: one per entry would cost a good part of its read.)"""
        counters = self._counters
        if self._skip_own and fields.get(b"origin") == self._node:
            counters.skipped_own += 1
            return None
        try:
            event = decode(fields, self._max_bytes)
        except WireError as exc:
            counters.malformed += 1
            logger.error("redis bridge: bad entry %s in %s: %s", entry_id.decode(), self._stream, exc)
            return exc
        if not self._wanted(event):
            counters.ignored += 1
            return None
        if event.event_id in self._seen:
            counters.duplicates += 1
            return None
        return event

    async def _publish(self, event: Event, traced: bool) -> DeliveryReport | BaseException:
        # On the bus's loop thread a delivery gets what any delivery on a bus
        # thread gets (Flask's app context, say; read now, as an integration
        # may set it after the bridge started); the worker enters it itself.
        factory = self._bus.dispatch_context if self._via_worker else None
        try:
            with self._received(event) if traced else _UNTRACED:
                if factory is None:
                    return await self._bus.publish(event)
                with factory():
                    return await self._bus.publish(event)
        except Exception as exc:  # the bus propagates receiver errors
            return exc

    def _received(self, event: Event) -> AbstractContextManager[object]:
        """What an instrumented bus enters around publishing ``event`` here:
        its trace context from the entry, as a parent (broadcast: every node
        handles the entry once, now) or a link (group mode: one consumer
        handles it, perhaps again after another failed). Nothing otherwise."""
        headers = self._carriers.get(event.event_id)
        hooks = instrumentation(self._bus)
        if hooks is None:
            return _UNTRACED
        return hooks.received(
            event, headers or {}, link=self._retry, attributes={"blinker_events.redis.stream": self._stream}
        )

    async def _through_worker(self, events: list[Event], traced: bool) -> list[DeliveryReport | BaseException]:
        # Events with sync receivers are queued for the worker, all at once.
        # Until the first of them, events with only async receivers are
        # published right here, on the bus loop the worker would hand them
        # to anyway; after it they are queued too, or they would overtake it.
        bus = self._bus
        pending: list[Future[DeliveryReport] | DeliveryReport | BaseException] = []
        queued = False
        for event in events:
            if not queued and not has_sync_receivers(bus, event):
                pending.append(await self._publish(event, traced))
                continue
            try:
                if traced:  # (a context manager per entry costs a good part of its read)
                    with self._received(event):
                        pending.append(bus.publish_nowait(event))
                else:
                    pending.append(bus.publish_nowait(event))
                queued = True
            except QueueFullError:
                # The app's own queued work filled the queue: deliver this
                # one here, once what this batch queued before it is done.
                await _settled([p for p in pending if isinstance(p, Future)])
                pending.append(await self._publish(event, traced))
        outcomes = iter(await _settled([p for p in pending if isinstance(p, Future)]))
        return [next(outcomes) if isinstance(p, Future) else p for p in pending]

    def _succeeded(self, event: Event, outcome: DeliveryReport | BaseException) -> bool:
        """Whether ``event`` was handled here; counts and logs either way."""
        error = _problem(outcome, self._retry)
        if error is None:
            self._seen.add(event.event_id)
            self._counters.delivered += 1
            return True
        self._counters.failed += 1
        # The origin is wire data, and the error may quote it: both bounded.
        logger.warning(
            "redis bridge: delivering %r from %s failed: %s", event, describe(event.origin), _cut(error, 1000)
        )
        return False

    async def dead_letter(self, entry_id: bytes, fields: Mapping[bytes, bytes], reason: str, detail: str) -> None:
        """Copy the entry to the dead-letter stream with why it is there."""
        record = dict(fields)
        record.update(
            {
                b"dead.reason": reason.encode(),
                b"dead.detail": detail.encode(errors="replace")[:1000],
                b"dead.stream": self._stream.encode(),
                b"dead.entry": entry_id,
                b"dead.node": self._node,
            }
        )
        await self._client.xadd(self._dead, record, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
        self._counters.dead_lettered += 1


async def _settled(futures: list[Future[DeliveryReport]]) -> list[DeliveryReport | BaseException]:
    """The outcomes of worker futures, in their order, once all are done;
    with one wake-up of this loop for the lot, as a rule: the worker mostly
    finishes jobs in the order they were queued, so once the last one is
    done the others are too. Any that is not (a job a hung receiver held
    up, say) is waited for the same way."""
    outcomes: list[DeliveryReport | BaseException | None] = [None] * len(futures)
    waiting = list(range(len(futures)))
    while waiting:
        last = futures[waiting[-1]]
        if not last.done():
            await _done(last)
        still = []
        for i in waiting:
            outcome = outcomes[i] = _outcome(futures[i])
            if outcome is None:
                still.append(i)
        waiting = still
    return cast("list[DeliveryReport | BaseException]", outcomes)


async def _done(future: Future[DeliveryReport]) -> None:
    # Not asyncio.wrap_future: it copies the result over, which is not needed.
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    future.add_done_callback(lambda _: _wake(loop, waiter))
    await waiter


def _wake(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None]) -> None:
    # On the thread that settled the future. A receiver that a bus shutdown
    # left running ends after the bus loop closed, and nobody waits then.
    with contextlib.suppress(RuntimeError):  # the loop is closed
        loop.call_soon_threadsafe(_settle_waiter, waiter)


def _settle_waiter(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _problem(outcome: DeliveryReport | BaseException, strict: bool) -> str | None:
    """What went wrong with a delivery, or None if nothing did.

    A receiver that raised, timed out, was cancelled or was skipped
    (auto-disabled, say) is a problem in either mode. In group mode (``strict``) so is an event no
    receiver here took at all: acknowledging those would lose the work,
    while leaving them pending lets another node (or a later attempt)
    handle them, up to ``max_deliveries``.
    """
    if isinstance(outcome, BaseException):
        return repr(outcome)
    if outcome.failed or outcome.timed_out:
        return ", ".join(f"{sub.name}: {exc!r}" for sub, exc in outcome.failed) or "a receiver timed out"
    if outcome.cancelled:  # not a failure, but not done either: the bus loop stopped under it, say
        return ", ".join(f"{sub.name} cancelled" for sub in outcome.cancelled)
    if outcome.skipped:
        return ", ".join(f"{sub.name} skipped ({reason})" for sub, reason, _ in outcome.skipped)
    if strict and not outcome.succeeded:
        return "no receiver here took it; left for another node"
    return None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _outcome(future: Future[DeliveryReport]) -> DeliveryReport | BaseException | None:
    """A future's report or exception, None while it is not done (each look
    at a future takes its lock: two here, where done(), cancelled(),
    exception() and result() would take four)."""
    try:
        exc = future.exception(0)
    except CancelledError:
        return CancelledError("the worker dropped the delivery")
    except TimeoutError:
        return None
    return future.result() if exc is None else exc
