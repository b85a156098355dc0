"""The FastAPI example (examples/fastapi_app) as its users run it: uvicorn
in a subprocess on a free 127.0.0.1 port, real HTTP requests, and the
server stopped by a signal with events still in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent


class Example:
    """``python -m examples.fastapi_app`` on a port of its own."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "examples.fastapi_app", "--port", str(self.port), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.http = httpx.Client(base_url=self.url, timeout=10)
        if not wait_until(self._answers, timeout=30):
            self.stop(signal.SIGKILL)
            pytest.fail(f"the example did not start:\n{self.output}")
        self.output = ""

    def _answers(self) -> bool:
        assert self.process.poll() is None, "the example exited"
        try:
            return self.http.get("/orders").status_code == 200
        except httpx.TransportError:
            return False

    def order(self, quantity: int = 1, item: str = "tea", **headers: str) -> httpx.Response:
        return self.http.post("/orders", json={"item": item, "quantity": quantity}, headers=headers)

    def get(self, path: str) -> Any:
        return self.http.get(path).json()

    def stop(self, how: signal.Signals = signal.SIGTERM) -> int:
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(how)
        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        self.output = out
        return self.process.returncode


@pytest.fixture
def example() -> Iterator[Example]:
    server = Example("--notify-slow", "5")
    yield server
    server.stop()


def test_an_order_is_answered_and_its_receivers_run_after_with_its_request_id(example: Example) -> None:
    answer = example.order(2, "jam", **{"X-Request-ID": "order-1"})
    assert answer.status_code == 201
    assert answer.json() == {"order": {"id": 1, "item": "jam", "quantity": 2}, "request_id": "order-1"}
    assert wait_until(lambda: example.get("/orders")["notified"] == [1], timeout=5)
    assert example.get("/orders")["reserved"] == [{"id": 1, "request_id": "order-1"}]


def test_a_bulk_orders_slow_notifier_is_cut_at_its_timeout_without_holding_the_response(example: Example) -> None:
    started = time.monotonic()
    assert example.order(12).status_code == 201
    assert time.monotonic() - started < 5  # the notifier takes 5 s; the response never waited for it

    def report() -> dict[str, Any] | None:
        rows = [r for r in example.get("/history.json")["events"] if r["type"] == "order.created"]
        return rows[0] if rows and rows[0]["timed_out"] else None

    assert wait_until(report, timeout=5)
    row = report()
    assert row is not None
    assert (row["order"], row["timed_out"], row["succeeded"]) == (1, ["notify_customer"], ["reserve_stock"])
    assert example.get("/orders")["notified"] == []


def test_the_failing_receiver_is_disabled_after_three_failures_and_the_page_shows_it(example: Example) -> None:
    for _ in range(4):
        assert example.order().status_code == 201

    def orders_done() -> list[dict[str, Any]]:
        rows = [r for r in example.get("/history.json")["events"] if r["type"] == "order.created"]
        return rows if len(rows) == 4 else []

    assert wait_until(orders_done, timeout=5)
    failed = {row["order"]: row["failed"] for row in orders_done()}
    assert failed == {1: ["sync_to_crm (ConnectionError)"], 2: ["sync_to_crm (ConnectionError)"],
                      3: ["sync_to_crm (ConnectionError)"], 4: []}  # fmt: skip
    crm = [s for s in example.get("/history.json")["subscriptions"] if s["receiver"] == "sync_to_crm"]
    assert crm == [{"receiver": "sync_to_crm", "event_type": "order.created", "failures": 3, "disabled": True}]
    page = example.http.get("/history")
    assert page.headers["content-type"].startswith("text/html")
    assert '<table id="events">' in page.text
    assert "<td>sync_to_crm (ConnectionError)</td>" in page.text
    assert "<td>sync_to_crm</td><td>order.created</td><td>3</td><td>True</td>" in page.text


def test_the_history_page_escapes_what_clients_send(example: Example) -> None:
    assert example.order(1, "<script>alert(1)</script>").status_code == 201
    assert wait_until(lambda: example.get("/history.json")["events"], timeout=5)
    assert example.order(1, "x" * 201).status_code == 422  # refused by the model: not an order
    assert "<script>alert" not in example.http.get("/history").text


# uvicorn raises the signal again once it has shut down: SIGTERM then ends
# the process, and uvicorn.run takes the KeyboardInterrupt of SIGINT.
@pytest.mark.parametrize(("how", "exit_code"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 0)])
def test_stopping_the_server_delivers_every_order_still_in_flight(
    tmp_path: Path, how: signal.Signals, exit_code: int
) -> None:
    ledger = tmp_path / "ledger.txt"
    server = Example("--ledger", str(ledger), "--ledger-delay", "0.2")
    try:
        for _ in range(12):
            assert server.order().status_code == 201
        written = ledger.read_text().split() if ledger.exists() else []
    finally:
        code = server.stop(how)
    assert len(written) < 12, "the orders were all delivered before the signal: nothing was in flight"
    assert code == exit_code, server.output
    assert ledger.read_text().split() == [str(n) for n in range(1, 13)]
    assert (
        "shut down at the end of the lifespan, 0 delivery(ies) dropped (queued here, or unwritten by a bridge), "
        "0 still being delivered "
        "(left running, not dropped: cut off if the process exits now) (after their response: 12 queued"
    ) in server.output
