"""The :class:`RedisBridge` facade: configuration, start and stop, stats.

Roles, as the other modules of this package name them: *publishers* (any
thread) hand encoded entries to the outbox through the bus's outlet hook;
the *writer* and the *reader* are tasks on the bridge's loop -- the bus's
loop thread after :meth:`RedisBridge.start`, the caller's loop after
:meth:`RedisBridge.start_async`. Nothing else runs there on our behalf.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from time import monotonic
from types import TracebackType
from typing import Any, Self

from .. import Event, EventBus, EventTypeLike
from ..lowlevel import (
    bus_loop,
    check_positive_int,
    check_timeout,
    forget_outlet_after_fork,
    instrumentation,
    outlets,
)
from ._connection import make_client, redact
from ._delivery import IN_DELIVERY, SeenIds
from ._inbound import Cursor
from ._options import DEFAULT_URL, check_options
from ._outbound import Outbox
from ._session import Counters, Session, Settings, Shared
from ._wire import Fields, add_carrier, encode

__all__ = ["RedisBridge"]

logger = logging.getLogger("blinker_events.redis")

#: Seconds a bus's shutdown with no timeout gives its bridges to flush: the
#: queue may take as long as it needs, but Redis may never come back.
CLOSE_FLUSH_SECONDS = 10.0


class RedisBridge:
    """Carries a bus's events to and from a Redis stream, so that buses in
    other processes and on other hosts receive them.

    ``mode="broadcast"``: every node receives every event (except its own,
    whose receivers ran when it was published). ``mode="group"``: the stream
    is a work queue -- each event is delivered to one consumer of
    ``group``, at least once, and a local publish of a bridged type hands
    the event to the group instead of running receivers here
    (``report.handed_off``). See :doc:`/redis` for the exact
    guarantees.

    ``event_types``: the types to carry (a typed event class: its
    subclasses' events too; None: every type except the bus's
    own ``SystemEventType`` events and types relayed from blinker signals,
    whose data are Python objects). ``direction``: ``"both"``, ``"out"``
    (only write) or ``"in"`` (only read). ``maxlen`` caps the stream
    (approximately; None: never trimmed). ``node_id``: this process's id on
    the wire, which its own events carry back (made at the first start
    unless given). ``batch_size``: entries read, and written, per round
    trip. Events that JSON cannot carry are
    refused at publish with ``ValueError``; ``encoder`` may convert them
    (like ``json.dumps``'s ``default``).

    Group settings: ``group`` (default: the bus's name), ``consumer`` (this
    node's name in it; give a stable one, say per worker slot, for a
    restarted node to re-read its own pending entries), ``claim_idle``
    (seconds a pending entry waits before another node may claim it; longer
    than your slowest delivery), ``max_deliveries`` (then it goes to
    ``dead_letter_stream``, default ``stream + ":dead"``).

    Limits: ``buffer_size`` entries wait to be written; when it is full, a
    publisher waits up to ``put_timeout`` seconds (None: without limit) for
    room while Redis takes writes, and while Redis is unreachable the new
    event is dropped (counted and logged) at once; ``max_payload`` bytes per
    event; ``dedupe_size`` event ids remembered to recognise redeliveries.
    ``client_options`` go to ``redis.asyncio.Redis.from_url`` (TLS files,
    ``socket_timeout``, which is 10 s here).

    :raises TypeError, ValueError: a bad argument, named -- ``url`` included, when
        redis-py cannot parse it (its password never shown).
    """

    def __init__(
        self,
        bus: EventBus,
        url: str = DEFAULT_URL,
        *,
        stream: str = "blinker_events",
        event_types: Iterable[EventTypeLike] | None = None,
        mode: str = "broadcast",
        group: str | None = None,
        consumer: str | None = None,
        maxlen: int | None = 100_000,
        direction: str = "both",
        node_id: str | None = None,
        encoder: Callable[[Any], Any] | None = None,
        buffer_size: int = 10_000,
        put_timeout: float | None = 5.0,
        max_payload: int = 1_000_000,
        claim_idle: float = 60.0,
        max_deliveries: int = 5,
        dead_letter_stream: str | None = None,
        dedupe_size: int = 100_000,
        batch_size: int = 500,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(bus, EventBus):
            raise TypeError(f"bus must be an EventBus, not {type(bus).__name__}")
        options = check_options(
            bus.name, url, stream=stream, event_types=event_types, mode=mode, group=group, consumer=consumer,
            maxlen=maxlen, direction=direction, node_id=node_id, encoder=encoder, max_payload=max_payload,
            claim_idle=claim_idle, max_deliveries=max_deliveries, dead_letter_stream=dead_letter_stream,
            batch_size=batch_size, client_options=client_options,
        )  # fmt: skip
        self._options = options
        self.bus = bus
        self.url, self.stream, self.mode, self.direction = options.url, options.stream, options.mode, options.direction
        self.group, self.maxlen, self.dead_letter_stream = options.group, options.maxlen, options.dead_letter_stream
        self._consumer = consumer
        self._node = node_id
        self.counters = Counters()
        wait = check_timeout(put_timeout, "put_timeout")
        self._outbox = Outbox(check_positive_int(buffer_size, "buffer_size"), wait, self.counters)
        seen = SeenIds(check_positive_int(dedupe_size, "dedupe_size"))
        self._shared = Shared(self.bus, self._outbox, self.counters, seen, Cursor(), self._options.wanted)
        #: True in group mode: a publish of a carried type hands the event to
        #: the group instead of running receivers here (``report.handed_off``).
        self.takes_over = mode == "group"
        self._node_bytes = b""
        self._lock = threading.Lock()
        self._session: Session | None = None
        self._closing: Session | None = None

    # -- identity ------------------------------------------------------------

    @property
    def node_id(self) -> str | None:
        """This bridge's id on the wire (made at first start unless given)."""
        return self._node

    @property
    def consumer(self) -> str | None:
        """This node's consumer name in its group (group mode)."""
        return self._consumer

    @property
    def running(self) -> bool:
        """Whether the bridge is started (and not stopped since)."""
        return self._session is not None

    # -- start and stop ------------------------------------------------------

    def start(self, *, timeout: float | None = 10.0) -> bool:
        """Start on the bus's loop thread, for sync apps. Returns True once
        connected (and, in group mode, joined), False if Redis did not answer
        within ``timeout`` seconds -- the bridge then keeps trying in the
        background and buffers what is published meanwhile. Call it in each
        process (after a fork: see :doc:`/redis` on gunicorn).

        :raises RuntimeError: the bus's loop thread did not answer within
            ``timeout`` + 5 s; or this bus already has a running bridge on the
            same stream and Redis (each would read back the other's events); or
            called on the bus's own loop thread (use ``await start_async()``)."""
        timeout = check_timeout(timeout)
        threads = bus_loop(self.bus)
        if threads.in_loop_thread():
            raise RuntimeError("start() would block the bus's loop; use await start_async() there")
        loop = threads.loop()
        opening = asyncio.run_coroutine_threadsafe(self._open(timeout, on_bus_loop=True), loop)
        try:
            return opening.result(None if timeout is None else timeout + 5.0)
        except futures.TimeoutError:
            raise RuntimeError(
                "the bus's loop thread does not answer (was the process forked with it running?)"
            ) from None

    async def start_async(self, *, timeout: float | None = 10.0) -> bool:
        """Start on the running loop, for async apps; as :meth:`start`."""
        return await self._open(check_timeout(timeout), on_bus_loop=False)

    async def _open(self, timeout: float | None, *, on_bus_loop: bool) -> bool:
        loop = asyncio.get_running_loop()
        # A stop() that could not wait (called on the loop, or by one of this
        # bridge's receivers) may still be finishing: let it, within the timeout.
        deadline = None if timeout is None else monotonic() + timeout
        while self._closing is not None and self._session is None:
            if deadline is not None and monotonic() > deadline:
                raise RuntimeError("this bridge is still stopping: a stop() that could not wait has not finished")
            await asyncio.sleep(0.01)
        with self._lock:
            if self._session is not None:
                raise RuntimeError("this bridge is already started")
            if self._closing is not None:
                raise RuntimeError("this bridge is still stopping: a stop() that could not wait has not finished")
            if self._node is None:
                self._node = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
            if self.mode == "group" and self._consumer is None:
                self._consumer = self._node
            self._node_bytes = self._node.encode()
            settings = Settings(
                stream=self.stream,
                mode=self.mode,
                direction=self.direction,
                group=self.group,
                consumer=self._consumer,
                node=self._node,
                maxlen=self.maxlen,
                dead_letter_stream=self.dead_letter_stream,
                max_payload=self._options.max_payload,
                claim_idle=self._options.claim_idle,
                max_deliveries=self._options.max_deliveries,
                batch_size=self._options.batch_size,
            )
            for other in outlets(self.bus):
                if (
                    isinstance(other, RedisBridge)
                    and other is not self
                    and (other.url, other.stream)
                    == (
                        self.url,
                        self.stream,
                    )
                ):
                    # Each would write every local event once and deliver the
                    # other's copy back: every event twice, and an echo.
                    raise RuntimeError(
                        f"this bus already has a running bridge on {self.stream!r} at {redact(self.url)}"
                    )
            client = make_client(self.url, self._options.client_options)
            session = self._session = Session(loop, client, settings, self._shared, self._lost, on_bus_loop=on_bus_loop)
            # In the same critical section as the session: a stop() racing
            # this start either sees neither or both.
            self.bus.add_outlet(self)  # also when only reading: the bus's shutdown then stops it
            _RUNNING.add(self)
        session.start()
        if await session.started(timeout):
            return True
        if session.refused.is_set():
            logger.error(
                "redis bridge %s: %s refused the credentials (authentication failed); still trying",
                self,
                redact(self.url),
            )
        else:
            logger.warning(
                "redis bridge %s: no answer from %s within %ss; still trying", self, redact(self.url), timeout
            )
        return False

    def stop(self, timeout: float | None = 10.0) -> int:
        """Stop reading, write what is buffered (waiting up to ``timeout``
        seconds), then disconnect. Returns how many buffered events were
        dropped because Redis did not take them in time (each counted and
        logged). A stopped bridge can be started again."""
        timeout = check_timeout(timeout)
        session = self._detach()
        if session is None:
            return 0
        loop = session.loop
        closing = self._close(session, timeout)
        if _in_loop(loop):
            # Called on the bridge's own loop (say, from an async receiver):
            # it cannot wait here; the close runs as a task of its own.
            task = loop.create_task(closing)
            _PENDING_CLOSES.add(task)
            task.add_done_callback(_PENDING_CLOSES.discard)
            return 0
        if session.on_bus_loop:
            # Through the loop thread, which counts it in flight: a bus
            # shutdown on another thread then waits for this close to end.
            future = bus_loop(self.bus).submit_to(loop, closing)
        elif loop.is_running():
            future = asyncio.run_coroutine_threadsafe(closing, loop)
        else:
            closing.close()
            future = None
        if future is None:
            self._closed(session)
            return session.abandon("its event loop is gone")
        if IN_DELIVERY.get() is not None and IN_DELIVERY.get() is session.delivery:
            # Called by a receiver of this bridge's own delivery (on the
            # worker): the close waits for that delivery, which waits for
            # this call. It finishes once the receiver returns.
            return 0
        try:
            return future.result(None if timeout is None else timeout + 5.0)
        except futures.CancelledError:  # a bus shutdown stopped the loop under the close, which still counted
            return session.dropped

    async def stop_async(self, timeout: float | None = 10.0) -> int:
        """As :meth:`stop`, awaited."""
        timeout = check_timeout(timeout)
        session = self._detach()
        if session is None:
            return 0
        if _in_loop(session.loop):
            return await self._close(session, timeout)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close(session, timeout), session.loop))

    def _detach(self) -> Session | None:
        with self._lock:
            session, self._session = self._session, None
            if session is not None:
                self._closing = session
                _RUNNING.discard(self)
        return session

    async def _close(self, session: Session, timeout: float | None) -> int:
        try:
            return await session.close(timeout, reading_done=lambda: self.bus.remove_outlet(self))
        finally:
            self._closed(session)

    def _lost(self, session: Session) -> None:
        """(On the loop.) The loop cancelled the session's tasks without a
        stop -- an async app's loop ending without ``stop_async()``. The
        bridge stops here: no outlet left behind that would take events
        nobody writes."""
        with self._lock:
            if self._session is not session:
                return
            self._session = None
            _RUNNING.discard(self)
        self.bus.remove_outlet(self)
        reason = "its event loop ended without stop_async()"
        writer = session.writer
        if writer is None or writer.done():
            session.abandon(reason)
        else:  # after the writer's last flush, which runs as its task ends
            writer.add_done_callback(lambda _: session.abandon(reason))

    def _forget_run(self) -> None:
        """(In a forked child.) Forget the parent's run; see _after_fork_in_child."""
        self._lock = threading.Lock()
        self._session = self._closing = None
        forget_outlet_after_fork(self.bus, self)
        self._outbox.forget()

    def _closed(self, session: Session) -> None:
        # The outlet goes first: while _closing is set, no start can add it back.
        if self._closing is session:
            self.bus.remove_outlet(self)
        with self._lock:
            if self._closing is session:
                self._closing = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await self.start_async()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_async()

    # -- the outlet: local events on their way out ---------------------------

    def prepare(self, event: Event) -> Fields | None:
        """(Publisher's thread.) The entry for ``event``, or None if this
        bridge does not carry its type; ``ValueError`` if it cannot."""
        if not self._options.carries(event, self.bus):
            return None
        fields = encode(event, self._node_bytes, self._options.encoder, self._options.max_payload)
        hooks = instrumentation(self.bus)
        if hooks is not None:  # the publish's trace context goes with the event
            headers: dict[str, str] = {}
            hooks.inject(headers)
            add_carrier(fields, headers)
        return fields

    def send(self, prepared: object) -> None:
        """(Publisher\'s thread.) Queue what :meth:`prepare` made for the writer."""
        self._outbox.put(prepared)  # type: ignore[arg-type]

    def close(self, timeout: float | None) -> int:
        """The bus shuts down: stop, flushing within ``timeout`` (None: within
        10 seconds -- Redis may never answer). Returns :meth:`stop`'s count
        of dropped events, which the bus's ``shutdown()`` adds to its own."""
        return self.stop(CLOSE_FLUSH_SECONDS if timeout is None else timeout)

    # -- introspection -------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters since this bridge was made: ``published`` (written to
        Redis), ``buffered`` (waiting to be), ``dropped`` (never written:
        buffer full, refused by Redis, or stopped), ``delivered``,
        ``failed`` (deliveries with a failed or timed-out receiver; retried
        in group mode), ``duplicates`` (redeliveries recognised and not
        delivered again), ``skipped_own``, ``ignored`` (types this bridge
        does not carry), ``malformed``, ``dead_lettered``, ``claimed``,
        ``lost_to_trim``, ``connection_errors``, ``auth_failures`` (Redis refused
        the credentials), ``reconnects``, ``errors``
        (unexpected errors of the bridge's tasks, logged with traceback)."""
        stats: dict[str, Any] = self.counters.as_dict()
        stats["buffered"] = len(self._outbox)
        stats["running"] = self.running
        return stats

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        group = f" group={self.group!r}" if self.group else ""
        return f"<RedisBridge {self.stream!r} {self.mode}{group} {self.direction} {state}>"


# -- helpers -----------------------------------------------------------------

#: Bridges started and not stopped (forgotten in a forked child). There is
#: no exit handler of the bridge's own: a running bridge is an outlet of its
#: bus, and the bus's exit drain (``blinker_events.ATEXIT_DRAIN_SECONDS`` in
#: all, or a Flask app's shutdown timeout) stops it with what time is left,
#: after the queued events that may publish into it were delivered.
_RUNNING: weakref.WeakSet[RedisBridge] = weakref.WeakSet()
_PENDING_CLOSES: set[asyncio.Task[int]] = set()


def _after_fork_in_child() -> None:
    # The child has neither the loop nor the connection of a bridge started
    # in the parent: it is stopped here (start it again in the child). What
    # its outbox holds is the parent's to write, not lost.
    for bridge in list(_RUNNING):
        bridge._forget_run()
    _RUNNING.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
