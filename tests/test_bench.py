"""Each benchmark scenario runs correctly at a small size.

Timing belongs to the benchmark itself; here only what it verifies before
reporting: every receiver of every library ran exactly as often as expected
(the scenarios raise otherwise), and the report has the expected shape.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyee")
pytest.importorskip("django")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import bench


@pytest.mark.parametrize("receivers", [1, 10])
def test_sync_scenario(receivers: int) -> None:
    result = bench.sync_scenario(receivers, n=50, repeats=1)
    assert result.scenario == f"S{receivers}"
    assert set(result.ns) == {"blinker_events", "blinker", "django", "pyee"}
    assert all(ns > 0 for ns in result.ns.values())


@pytest.mark.parametrize("receivers", [1, 10])
def test_async_scenario(receivers: int) -> None:
    result = bench.async_scenario(receivers, n=30, repeats=1)
    assert set(result.ns) == {"blinker_events", "blinker", "django", "pyee"}


def test_otel_scenario() -> None:
    from benchmarks.otel_bench import otel_scenario

    result = otel_scenario(n=30, repeats=1)
    cases = {f"{case} {kind}" for case in ("S1", "A1") for kind in ("plain", "noop", "sdk")}
    assert set(result.ns) == cases
    assert sorted(result.notes) == sorted(f"{c} {k} / plain" for c in ("S1", "A1") for k in ("noop", "sdk"))


def test_mix_scenario() -> None:
    result = bench.mix_scenario(n=20, repeats=1)
    assert set(result.ns) == {"blinker_events", "blinker", "django", "bare hop", "thread floor"}
    assert set(result.notes) == {"thread floor / django"}


def test_queue_scenario() -> None:
    # The scenario's own count checks fail it if any event, ours or a
    # floor's, went undelivered.
    result = bench.queue_scenario(n=200, repeats=1)
    assert set(result.ns) == {"blinker_events", "queue floor", "queue+Future floor"}
    assert result.notes["events_per_second"] > 0
    assert result.notes["caller_ns"] > 0


def test_queue_from_loop_scenario() -> None:
    # The scenario's own count checks fail it if any event, ours or the
    # floor's, went undelivered.
    result = bench.queue_from_loop_scenario(n=200, repeats=2)
    assert set(result.ns) == {"blinker_events", "loop floor"}
    assert result.notes["events_per_second"] > 0
    assert result.notes["loop floor events_per_second"] == pytest.approx(1e9 / result.ns["loop floor"])


def test_history_scenario() -> None:
    result = bench.history_scenario(n=50, repeats=1)
    assert set(result.ns) == {"history=0", "history=1000", "history=100000"}


def test_memory_scenario() -> None:
    result = bench.memory_scenario(2000)
    assert result.notes["calls"] == 2000
    assert result.notes["rss_growth_mb"] < 20  # the target; a leak of ~10 KB a call would break it


def test_targets_cover_every_scenario() -> None:
    results = {
        "S1": bench.sync_scenario(1, n=20, repeats=1),
        "H": bench.history_scenario(n=20, repeats=1),
    }
    names = [target for target, _, _ in bench.check_targets(results)]
    assert names == ["S1 <= 1.2x blinker", "H history 100,000 within 10% of 0"]


def test_a_miscount_aborts_the_report() -> None:
    counter = bench.Counter()
    counter.sync("lib")(None)
    with pytest.raises(AssertionError, match="ran 1 times, expected 2"):
        counter.expect("lib", 2)


@pytest.mark.skipif(
    shutil.which("redis-server") is None and not os.environ.get("CI"), reason="redis-server is not installed"
)
def test_redis_scenario_crosses_two_processes() -> None:
    # The consumer process asserts it got every event exactly once before it
    # reports; a miscount fails it and so this test.
    result = bench.redis_scenario(n=300, repeats=1)
    assert result.notes["broadcast_events_per_second"] > 0
    assert result.notes["group_events_per_second"] > 0
    names = [target for target, _, _ in bench.check_targets({"R": result})]
    assert result.notes["raw_events_per_second"] > 0
    assert names == [
        "R broadcast >= 10,000 events/s",
        "R group >= 10,000 events/s",
        "R broadcast >= 0.45x raw redis-py",
        "R group >= 0.45x raw redis-py",
    ]


def test_every_callgrind_case_is_a_valid_program() -> None:
    # The programs run only under valgrind (slow, maybe absent); a typo in
    # one would otherwise surface only there.
    from benchmarks import callgrind

    for case in callgrind.CASES:
        compile(callgrind.program(case), case, "exec")


@pytest.mark.skipif(not (Path(bench.__file__).resolve().parent.parent / ".git").exists(), reason="not a git checkout")
def test_compare_runs_both_packages_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import compare

    assert compare.main(["--rev", "HEAD", "--only", "S1,Q", "--repeats", "1", "--scale", "0.01"]) == 0
    out = capsys.readouterr().out
    # Each worker names where its package came from: this checkout, and the
    # revision exported to a temporary directory.
    assert "new: " + str(compare.ROOT) in out
    assert "blinker-events-compare-" in out
    assert "  S1 " in out
    assert "new/old" in out
