"""Every use of another library's private API, in one place.

Each function here leans on something its library does not promise; each
has a test in ``tests/test_interop.py`` that pins the assumption it makes,
so an upgrade that breaks one fails that named test instead of
misbehaving somewhere in a dispatch.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from asgiref.sync import SyncToAsync

__all__ = ["outer_loop", "quiet_pending_task", "running_loop"]


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, or None -- without the exception
    ``asyncio.get_running_loop()`` raises, which costs a traceback on the
    hot path. Uses ``asyncio._get_running_loop`` (private, but documented
    in asyncio's source as the fast form for this very purpose)."""
    return asyncio._get_running_loop()


def outer_loop() -> asyncio.AbstractEventLoop | None:
    """The loop of the ``sync_to_async`` call this thread runs in, if any.

    asgiref records it on ``SyncToAsync.threadlocal`` (``main_event_loop``,
    with ``main_event_loop_pid`` for fork safety) for its own
    ``async_to_sync``; nothing public exposes it."""
    local = SyncToAsync.threadlocal
    if getattr(local, "main_event_loop_pid", None) != os.getpid():
        return None
    loop: asyncio.AbstractEventLoop | None = getattr(local, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


def quiet_pending_task(task: asyncio.Task[Any]) -> None:
    """Keep asyncio from logging "Task was destroyed but it is pending" for
    ``task``, whose fate the bus reports itself. Sets the task's private
    ``_log_destroy_pending`` flag, which asyncio reads in ``Task.__del__``."""
    task._log_destroy_pending = False  # type: ignore[attr-defined]
