"""Each use of another library's private API (all in blinker_events._interop)
with the assumption it makes, pinned: an upgrade that breaks one fails here,
by name, instead of misbehaving in a dispatch."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
from concurrent.futures import Future

import blinker
import pytest
from asgiref.sync import SyncToAsync, sync_to_async

from blinker_events import _interop


class _Owner:
    def method(self) -> None:
        pass


def _plain() -> None:
    pass


# -- blinker ---------------------------------------------------------------------


def test_make_id_files_a_bound_method_by_function_and_object() -> None:
    owner = _Owner()
    assert _interop.make_id(owner.method) == _interop.make_id(owner.method)  # a fresh bound method each time
    assert _interop.make_id(owner.method) != _interop.make_id(_Owner().method)
    assert _interop.make_id(_plain) == id(_plain)
    assert _interop.make_id("a") == "a"  # strings are their own id


def test_any_id_is_the_sender_id_of_any_sender() -> None:
    signal = blinker.Signal()
    signal.connect(_plain)
    assert _interop.senders_of(signal, _interop.make_id(_plain)) == {_interop.ANY_ID}


def test_make_ref_calls_back_when_a_bound_method_s_object_goes() -> None:
    owner = _Owner()
    gone: list[object] = []
    ref = _interop.make_ref(owner.method, gone.append)
    assert ref() == owner.method
    del owner
    gc.collect()
    assert ref() is None
    assert len(gone) == 1


def test_senders_of_and_disconnect_by_id_read_and_change_blinker_s_bookkeeping() -> None:
    signal = blinker.Signal()
    sender = object()
    signal.connect(_plain, sender=sender)
    rid = _interop.make_id(_plain)
    assert _interop.senders_of(signal, rid) == {_interop.make_id(sender)}
    disconnected: list[object] = []
    signal.receiver_disconnected.connect(lambda s, **kw: disconnected.append(kw))
    _interop.disconnect_by_id(signal, rid)
    assert rid not in signal.receivers
    assert _interop.senders_of(signal, rid) == set()
    assert disconnected == []  # _disconnect sends no receiver_disconnected: the bus sends it itself


def test_blinker_internals_the_bus_s_signal_subclasses_override_are_there() -> None:
    """EventSignal and the drop-in Signal override connect, _disconnect and
    _clear_state and use these attributes and factories."""
    signal = blinker.Signal()
    for name in ("_by_receiver", "_by_sender", "_weak_senders", "receivers"):
        assert isinstance(getattr(signal, name), dict), name
    assert list(inspect.signature(blinker.Signal._disconnect).parameters) == ["self", "receiver_id", "sender_id"]
    assert list(inspect.signature(blinker.Signal._clear_state).parameters) == ["self"]
    assert callable(signal._make_cleanup_receiver(1))
    assert callable(signal._make_cleanup_sender(1))


# -- asyncio and asgiref ---------------------------------------------------------


def test_running_loop_is_none_outside_a_loop_and_the_loop_inside() -> None:
    assert _interop.running_loop() is None

    async def inside() -> asyncio.AbstractEventLoop | None:
        return _interop.running_loop()

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(inside()) is loop
    finally:
        loop.close()


def test_quiet_pending_task_silences_the_destroyed_pending_warning() -> None:
    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(asyncio.sleep(10))
        assert task._log_destroy_pending is True  # type: ignore[attr-defined]
        _interop.quiet_pending_task(task)
        assert task._log_destroy_pending is False  # type: ignore[attr-defined]
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    finally:
        loop.close()


def test_outer_loop_is_the_loop_of_the_enclosing_sync_to_async_call() -> None:
    assert hasattr(SyncToAsync, "threadlocal")
    assert _interop.outer_loop() is None
    seen: list[asyncio.AbstractEventLoop | None] = []

    async def main() -> asyncio.AbstractEventLoop:
        await sync_to_async(lambda: seen.append(_interop.outer_loop()), thread_sensitive=False)()
        return asyncio.get_running_loop()

    loop = asyncio.new_event_loop()
    try:
        assert seen == [] and loop.run_until_complete(main()) is seen[0]  # noqa: PT018
    finally:
        loop.close()


# -- concurrent.futures ----------------------------------------------------------


def test_future_internals_lazy_future_relies_on() -> None:
    future: Future[int] = Future()
    for name in ("_state", "_result", "_exception", "_waiters", "_done_callbacks", "_condition"):
        assert hasattr(future, name), name
    assert future._state == "PENDING"  # type: ignore[attr-defined]
    assert isinstance(future._condition, threading.Condition)  # type: ignore[attr-defined]
    future.set_result(1)
    assert future._state == "FINISHED"  # type: ignore[attr-defined]


def test_lazy_future_settles_without_a_condition_and_keeps_future_s_guarantees() -> None:
    future: _interop.LazyFuture[int] = _interop.LazyFuture()
    assert future.set_running_or_notify_cancel()
    future.set_result(3)
    assert future._lazy_condition is None  # settled with no Condition made
    assert future.result(0) == 3
    with pytest.raises(Exception, match="FINISHED"):
        future.set_result(4)
