"""The Flask example's history page in a real browser: headless Chromium
(Debian's ``chromium``) loads ``/events`` from the example served on a free
127.0.0.1 port, its DOM holds the server-drawn SVG tree, and a screenshot
shows it -- the outcome colours, laid out as a tree (receivers right of
their event, the nested event right of its receiver).

Skipped when no Chromium is installed, except under CI, where a missing
browser is a broken setup and fails (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from blinker_events.flow import COLOURS

from .conftest import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    message = "no chromium found (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def example_url() -> Iterator[str]:
    """The Flask example, run as ``python -m examples.flask_app`` on a free port."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "examples.flask_app", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, server, timeout=15)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def _post(url: str, body: dict[str, object]) -> int:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        status: int = response.status
        return status


def _browse(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",  # its own: several runs at once do not share a lock
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def read_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """``(width, height, rows)`` of an 8-bit RGB or RGBA PNG, each row its
    pixels as RGB bytes (the standard library has no PNG reader)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, header = 8, b"", b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), "only 8-bit, not interlaced"
    assert colour in (2, 6), "only RGB or RGBA"
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        previous = line
        rows.append(bytes(b for x in range(width) for b in line[x * channels : x * channels + 3]))
    return width, height, rows


def _where(rows: list[bytes], colour: str) -> list[tuple[int, int]]:
    """Every ``(x, y)`` of exactly ``colour`` (``#rrggbb``)."""
    wanted = bytes.fromhex(colour[1:])
    found = []
    for y, row in enumerate(rows):
        start = row.find(wanted)
        while start != -1:
            if start % 3 == 0:
                found.append((start // 3, y))
            start = row.find(wanted, start + 1)
    return found


def test_the_flask_example_history_page_renders_the_event_tree_in_chromium(example_url: str, tmp_path: Path) -> None:
    chromium = _chromium()
    assert _post(example_url + "/orders", {"item": "tea"}) == 201  # reserve_stock ok (-> stock.reserved),
    # notify_customer timed out (odd order), sync_to_crm failed
    page = example_url + "/events"

    dom = _browse(chromium, tmp_path, "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="blinker-events-flow"' in html
    for kind, label in [
        ("event", "order.created"),
        ("succeeded", "reserve_stock"),
        ("event", "stock.reserved"),
        ("succeeded", "check_restock"),
        ("timed_out", "notify_customer"),
        ("failed", "sync_to_crm"),
    ]:
        assert f'data-kind="{kind}"' in html
        assert f'font-weight="bold">{label}</text>' in html

    shot = tmp_path / "events.png"
    done = _browse(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1400,1800", page)
    assert done.returncode == 0, done.stderr[-2000:]
    width, height, rows = read_png(shot.read_bytes())
    assert (width, height) == (1400, 1800)
    assert len(set(rows)) > 100  # not blank: many different rows
    boxes = {kind: _where(rows, COLOURS[kind][0]) for kind in ("event", "succeeded", "timed_out", "failed")}
    for kind, pixels in boxes.items():
        assert len(pixels) > 2000, f"too few {kind} pixels: {len(pixels)}"
    # A tree, left to right: receivers right of the first event's boxes, the
    # nested event right of the receivers, its receiver further right still.
    events_x = sorted({x for x, _ in boxes["event"]})
    first_column = min(events_x)
    receivers_x = min(x for kind in ("succeeded", "timed_out", "failed") for x, _ in boxes[kind])
    assert first_column < receivers_x
    assert any(x > receivers_x + 150 for x in events_x)  # stock.reserved, one column on
    assert max(x for x, _ in boxes["succeeded"]) > max(events_x)  # check_restock, on the right of it
    # And below the tables: the flow section is under the page's first half-screen.
    assert min(y for _, y in boxes["failed"]) > 300
