"""A Django process on PostgreSQL whose receivers use the ORM on the bus's
threads; run by ``test_django.py`` (``python -m tests.django_pg_process
--port P --conn-max-age S``), one process per setting, since Django is
configured once per process.

It publishes a burst of events with ``publish_nowait`` (the worker) and a
burst of concurrent ``await publish`` (``SYNC_EXECUTOR: "worker"``, many
pool threads at once); each receiver runs a query. It prints one JSON line:
how many of its backend connections ``pg_stat_activity`` shows before and
after the bursts, the distinct backends and threads the receivers saw, and
how many deliveries succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from typing import Any

import django
import psycopg
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings

APPLICATION = "blinker-events-burst"
EVENTS = 30


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conn-max-age", type=int, required=True)
    args = parser.parse_args()
    dsn = f"host=127.0.0.1 port={args.port} user=postgres dbname=postgres"
    settings.configure(
        INSTALLED_APPS=["blinker_events.django"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "127.0.0.1",
                "PORT": str(args.port),
                "NAME": "postgres",
                "USER": "postgres",
                "CONN_MAX_AGE": args.conn_max_age,
                "OPTIONS": {"application_name": APPLICATION},
            }
        },
        BLINKER_EVENTS={"SYNC_EXECUTOR": "worker", "AUTODISCOVER": False, "TIMEOUT": 20.0},
        USE_TZ=True,
    )
    django.setup()
    from django.db import connection

    import blinker_events
    from blinker_events import Event

    def open_backends() -> int:
        with psycopg.connect(dsn, application_name="blinker-events-counter") as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION])
            return int(row.fetchone()[0])  # type: ignore[index]

    lock = threading.Lock()
    backends: set[int] = set()
    threads: set[int] = set()

    def query(event: Event) -> None:
        with connection.cursor() as cursor:
            # Long enough that concurrent publishes need a pool thread each.
            cursor.execute("SELECT pg_backend_pid(), pg_sleep(0.02)")
            pid = cursor.fetchone()[0]
        with lock:
            backends.add(pid)
            threads.add(threading.get_ident())

    blinker_events.subscribe("burst", query)
    request_kept = asyncio.run(_request_connection_survives(connection))
    backends.clear()  # the bursts' own, from here
    threads.clear()

    def settled(at_most: int) -> int:
        # A closed connection's backend leaves pg_stat_activity a moment later.
        count, deadline = open_backends(), time.monotonic() + 5
        while count > at_most and time.monotonic() < deadline:
            time.sleep(0.05)
            count = open_backends()
        return count

    before = settled(0)  # the request's connection was just closed
    futures = [blinker_events.publish_nowait(Event("burst", {"n": n})) for n in range(EVENTS)]
    reports = [future.result(30) for future in futures]

    async def concurrent() -> list[blinker_events.DeliveryReport]:
        return await asyncio.gather(*(blinker_events.publish(Event("burst", {"n": n})) for n in range(EVENTS)))

    reports += asyncio.run(concurrent())
    after = settled(before) if args.conn_max_age == 0 else open_backends()
    print(
        json.dumps(
            {
                "request_connection_kept": request_kept,
                "before": before,
                "after": after,
                "backends": len(backends),
                "threads": len(threads),
                "succeeded": sum(len(r.succeeded) for r in reports),
                "failed": [repr(e) for r in reports for _, e in r.failed],
            }
        ),
        flush=True,
    )


async def _request_connection_survives(connection: Any) -> bool:
    """As in an async view: the request's sync thread (asgiref's
    thread-sensitive executor in a ThreadSensitiveContext) has a connection,
    then ``await publish`` runs a sync receiver on that same thread. The
    delivery did not open that connection, so it must not close it (even
    with CONN_MAX_AGE = 0): the request is still using it. Closed after."""
    import blinker_events
    from blinker_events import Event

    # Functions, not ``connection.close``: the proxy would bind this thread's connection.
    def backend() -> int | None:
        return None if connection.connection is None else int(connection.connection.info.backend_pid)

    def connect() -> None:
        connection.ensure_connection()

    def close() -> None:
        connection.close()

    bus = blinker_events.default_bus
    bus.set_sync_executor("thread_sensitive")
    try:
        async with ThreadSensitiveContext():
            await sync_to_async(connect)()
            first = await sync_to_async(backend)()
            report = await bus.publish(Event("burst", {"n": -1}))
            assert len(report.succeeded) == 1, report
            kept = await sync_to_async(backend)() == first is not None
            await sync_to_async(close)()
    finally:
        bus.set_sync_executor("worker")
    return kept


if __name__ == "__main__":
    main()
