"""LazyFuture keeps every guarantee of concurrent.futures.Future."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, InvalidStateError, as_completed, wait

import pytest

from blinker_events._interop import LazyFuture


def settle_later(future: LazyFuture[int], value: int, delay: float = 0.05) -> threading.Thread:
    def run() -> None:
        threading.Event().wait(delay)
        assert future.set_running_or_notify_cancel() is True
        future.set_result(value)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_is_a_concurrent_future() -> None:
    assert isinstance(LazyFuture(), Future)


def test_settled_before_anyone_looks() -> None:
    future: LazyFuture[int] = LazyFuture()
    assert future.set_running_or_notify_cancel() is True
    future.set_result(7)
    assert future._lazy_condition is None  # the cheap path was taken
    assert future.done()
    assert not future.cancelled()
    assert future.result(timeout=0) == 7


def test_exception_settled_before_anyone_looks() -> None:
    future: LazyFuture[int] = LazyFuture()
    error = ValueError("x")
    future.set_exception(error)
    assert future.exception(timeout=0) is error
    with pytest.raises(ValueError):
        future.result(timeout=0)


def test_looking_at_a_settled_future_makes_no_condition() -> None:
    """A batch waiter looks at each of its settled futures once; making a
    Condition per look would cost what the lazy one saves."""
    settled: LazyFuture[int] = LazyFuture()
    settled.set_result(7)
    failed: LazyFuture[int] = LazyFuture()
    error = ValueError("x")
    failed.set_exception(error)
    assert (settled.done(), settled.exception(0), settled.result(0)) == (True, None, 7)
    assert (failed.done(), failed.exception(0)) == (True, error)
    with pytest.raises(ValueError):
        failed.result(0)
    assert settled._lazy_condition is None
    # (result() of a failed future raises through the stdlib's path, which makes one)


def test_a_pending_future_looked_at_still_times_out_then_settles() -> None:
    future: LazyFuture[int] = LazyFuture()
    assert future.done() is False
    with pytest.raises(TimeoutError):
        future.result(timeout=0)
    with pytest.raises(TimeoutError):
        future.exception(timeout=0)
    thread = settle_later(future, 5)
    assert future.result(timeout=5) == 5
    assert (future.done(), future.exception(0)) == (True, None)
    thread.join()


def test_a_cancelled_future_answers_as_cancelled() -> None:
    future: LazyFuture[int] = LazyFuture()
    assert future.cancel() is True
    assert future.done() is True
    with pytest.raises(CancelledError):
        future.result(0)
    with pytest.raises(CancelledError):
        future.exception(0)


def test_result_waits_for_a_later_settle() -> None:
    future: LazyFuture[int] = LazyFuture()
    thread = settle_later(future, 3)
    assert future.result(timeout=5) == 3
    thread.join()


def test_callbacks_run_whether_added_before_or_after() -> None:
    future: LazyFuture[int] = LazyFuture()
    seen: list[int] = []
    future.add_done_callback(lambda f: seen.append(f.result()))
    future.set_result(1)
    future.add_done_callback(lambda f: seen.append(f.result() + 1))
    assert seen == [1, 2]


def test_wait_and_as_completed() -> None:
    futures: list[LazyFuture[int]] = [LazyFuture() for _ in range(3)]
    threads = [settle_later(f, n, delay=0.02 * n) for n, f in enumerate(futures)]
    done, _ = wait(futures, timeout=5, return_when=FIRST_COMPLETED)
    assert len(done) >= 1
    assert sorted(f.result() for f in as_completed(futures, timeout=5)) == [0, 1, 2]
    for thread in threads:
        thread.join()


def test_cancel_before_running_is_honoured() -> None:
    future: LazyFuture[int] = LazyFuture()
    assert future.cancel() is True
    assert future.set_running_or_notify_cancel() is False
    assert future.cancelled()


def test_settling_twice_raises() -> None:
    future: LazyFuture[int] = LazyFuture()
    future.set_result(1)
    with pytest.raises(InvalidStateError):
        future.set_result(2)
    with pytest.raises(InvalidStateError):
        future.set_exception(ValueError())


def test_cannot_cancel_once_running() -> None:
    future: LazyFuture[int] = LazyFuture()
    assert future.set_running_or_notify_cancel() is True
    assert future.cancel() is False
    assert future.running()


@pytest.mark.asyncio
async def test_asyncio_wrap_future() -> None:
    future: LazyFuture[int] = LazyFuture()
    thread = settle_later(future, 9)
    assert await asyncio.wrap_future(future) == 9
    thread.join()
