"""``python -m blinker_events``: the demo, and the usage."""

from __future__ import annotations

import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blinker_events", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_demo_runs_and_ends_with_the_history() -> None:
    done = _run("demo")
    assert done.returncode == 0, done.stderr
    history = done.stdout.split("history, oldest first", 1)[1].splitlines()
    rows = [line.split() for line in history if line.strip() and not set(line.strip()) <= {"-", "="}]
    assert rows, done.stdout
    # Each row: time, event type, event id, then the four counts, whole.
    assert all(len(row) == 7 and row[3].startswith("ok=") and row[6].startswith("skipped=") for row in rows), rows


def test_help_prints_the_usage_and_succeeds() -> None:
    done = _run("--help")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("Usage: python -m blinker_events demo | bench")


def test_an_unknown_command_prints_the_usage_to_stderr_and_fails() -> None:
    done = _run("nonsense")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("Usage: python -m blinker_events")
