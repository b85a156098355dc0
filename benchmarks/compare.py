"""This checkout against another revision, side by side in one run.

    python benchmarks/compare.py --rev e9ae142 --only S1,S10,A1,A10,MIX,Q --repeats 3

Run it with the bench venv's Python (``.venv-py3.X/bin/python``, made by
``python3 dev.py bench``). ``--against DIR`` compares with the
``blinker_events`` package in ``DIR`` instead of a revision (a compiled
copy, see ``mypyc_build.py``). The package of ``--rev`` is
exported with ``git archive`` into a temporary directory; two worker
processes then import ``blinker_events``, one from this checkout and one
from that directory (``PYTHONPATH`` first, a neutral working directory, and
each worker checks where its package came from). Both run the scenarios of
*this* checkout's ``benchmarks/bench.py``, so the same code measures both
packages. Every repeat runs each scenario once in each worker, one worker
at a time and in alternating order (A B, B A, ...), so a change in the
machine's load lands on both; the median over the repeats is reported.

For the timed scenarios the figure is ns per event of ``blinker_events``
(and each worker's ratio to blinker / Django, as ``bench`` prints them);
for Q, fully delivered events per second. ``new/old`` is the ratio of
this checkout to the revision: below 1 is faster for ns, above 1 for Q.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

_WORKER = r"""
import importlib.util, json, sys
import blinker_events
tree = sys.argv[1]
if not blinker_events.__file__.startswith(tree):
    sys.exit(f"blinker_events came from {blinker_events.__file__}, not {tree}")
spec = importlib.util.spec_from_file_location("_compared_bench", sys.argv[2])
bench = importlib.util.module_from_spec(spec)
sys.modules["_compared_bench"] = bench
spec.loader.exec_module(bench)
from dataclasses import asdict
scale = float(sys.argv[3])
def size(n):
    return max(int(n * scale), 20)
makers = {
    "S1": lambda: bench.sync_scenario(1, size(20_000), 1),
    "S10": lambda: bench.sync_scenario(10, size(5_000), 1),
    "A1": lambda: bench.async_scenario(1, size(10_000), 1),
    "A10": lambda: bench.async_scenario(10, size(2_000), 1),
    "MIX": lambda: bench.mix_scenario(size(1_000), 1),
    "Q": lambda: bench.queue_scenario(size(50_000), 1),
    "QL": lambda: bench.queue_from_loop_scenario(size(5_000), 1),
    "H": lambda: bench.history_scenario(size(20_000), 1),
}
print(json.dumps({"ready": blinker_events.__file__}), flush=True)
for line in sys.stdin:
    print(json.dumps(asdict(makers[line.strip()]())), flush=True)
"""

SCENARIOS = ("S1", "S10", "A1", "A10", "MIX", "Q", "QL", "H")


class Worker:
    def __init__(self, label: str, tree: Path, scale: float, cwd: str) -> None:
        self.label = label
        env = {**os.environ, "PYTHONPATH": str(tree)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(tree), str(ROOT / "benchmarks" / "bench.py"), str(scale)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )
        self.origin = self._read()["ready"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.label} worker ended (exit {self.proc.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def run(self, scenario: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(scenario + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def export(rev: str, into: Path) -> Path:
    """The package of ``rev`` (``blinker_events/`` only) under ``into``."""
    archive = subprocess.run(["git", "archive", rev, "blinker_events"], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        # The "data" filter exists from 3.11.4 on (an earlier 3.11 extracts
        # without one: the archive is git's own, of this repository).
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)
    return into


def figure(result: dict[str, Any]) -> float:
    if result["scenario"] in ("Q", "QL"):
        return float(result["notes"]["events_per_second"])
    return float(result["ns"]["blinker_events"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default="e9ae142", help="the revision to compare with (default: the previous main)")
    parser.add_argument("--only", default="S1,S10,A1,A10,MIX,Q", help="comma-separated scenarios")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--against", type=Path, help="a directory holding a blinker_events package to compare with, instead of --rev"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every scenario's event count")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    if args.against is None:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", args.rev], check=False, cwd=ROOT, capture_output=True, text=True
        )
        if rev.returncode:
            parser.error(f"unknown revision {args.rev!r}")
        what = rev.stdout.strip()
    else:
        what = str(args.against)
    with tempfile.TemporaryDirectory(prefix="blinker-events-compare-") as tmp:
        old_tree = export(args.rev, Path(tmp, "old")) if args.against is None else args.against.resolve()
        neutral = Path(tmp, "cwd")
        neutral.mkdir()
        new = Worker("new", ROOT, args.scale, str(neutral))
        old = Worker("old", old_tree, args.scale, str(neutral))
        print(f"new: {new.origin}\nold: {old.origin} ({what})", flush=True)
        samples: dict[str, dict[str, list[dict[str, Any]]]] = {s: {"new": [], "old": []} for s in only}
        try:
            for rep in range(args.repeats):
                for scenario in only:
                    pair = (new, old) if rep % 2 == 0 else (old, new)
                    for worker in pair:
                        samples[scenario][worker.label].append(worker.run(scenario))
                print(f"repeat {rep + 1}/{args.repeats} done", file=sys.stderr, flush=True)
        finally:
            new.close()
            old.close()
    print(f"\nmedian of {args.repeats}, interleaved; Python {sys.version.split()[0]}")
    for scenario in only:
        med = {label: statistics.median(figure(r) for r in runs) for label, runs in samples[scenario].items()}
        unit = "events/s" if scenario in ("Q", "QL") else "ns/event"
        line = f"  {scenario:4s} new {med['new']:12,.0f}  old {med['old']:12,.0f} {unit}"
        line += f"   new/old = {med['new'] / med['old']:.2f}x"
        peers = [p for p in ("blinker", "django") if p in samples[scenario]["new"][0]["ns"]]
        for peer in peers:
            ratios = {
                label: statistics.median(r["ns"]["blinker_events"] / r["ns"][peer] for r in runs)
                for label, runs in samples[scenario].items()
            }
            line += f"   / {peer}: new {ratios['new']:.2f}x old {ratios['old']:.2f}x"
        target = {"Q": 1.4, "QL": 10.0}.get(scenario)  # the core issue's, against the previous main
        if target is not None:
            line += f"   [{'met' if med['new'] / med['old'] >= target else 'MISSED'}: >= {target}x]"
        print(line)
        # Q's and QL's floors (no bus at all; both workers time them, with
        # this checkout's bench code): how far the rate target is from what
        # the least such delivery manages in the same run.
        if target is None:
            continue
        runs = samples[scenario]["new"] + samples[scenario]["old"]
        for floor in (lib for lib in runs[0]["ns"] if lib != "blinker_events"):
            rate = 1e9 / statistics.median(r["ns"][floor] for r in runs)
            print(f"       {floor}: {rate:12,.0f} events/s   floor/old = {rate / med['old']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
