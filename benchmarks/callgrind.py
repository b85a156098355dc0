"""Instructions per publish, counted by valgrind's callgrind.

    python benchmarks/callgrind.py                   # every case, this tree
    python benchmarks/callgrind.py --cases S1,blinker --split 25
    python benchmarks/callgrind.py --tree /tmp/prev  # another checkout's package

Wall-clock ratios on a shared machine move with the neighbours' load;
instruction counts do not. Each case runs twice under callgrind, with
``--small`` and ``--large`` iterations of its loop, and the difference of the
two totals divided by the difference of the iterations is the cost of one
iteration: interpreter start-up, imports and set-up cancel out, so no
client requests or collection toggles are needed. ``--split`` does the same
subtraction per C function (``callgrind_annotate`` of both runs), which
shows where inside CPython the instructions of one iteration go. The loop's
own overhead (``loop``) is measured too and subtracted from every case.

Cases (all guards on where a bus is involved: history 1,000, a default
timeout of 5 s, cycle guard, failure tracking):

- ``S1``: ``publish_sync(Event(T, DATA, SOURCE))`` to 1 sync receiver
- ``S10`` / ``blinker10``: ``publish_sync`` / ``send`` to 10 sync receivers
- ``S1-prebuilt``: the same publish of one event made beforehand, so
  ``S1`` minus this is what making the event costs inside a publish
- ``event``: ``Event(T, DATA, SOURCE)`` alone
- ``blinker``: blinker ``Signal.send(SOURCE, **DATA)`` to 1 receiver
- ``A1`` / ``blinker-async``: ``await publish`` / ``await send_async`` to
  1 async receiver, driven by one ``run_until_complete`` per loop
- ``A10`` / ``django-async``: ``await publish`` / Django's ``await
  asend`` to 10 async receivers; ``tasks10``: ten bare tasks made and run,
  the least that running ten receivers each in a task of its own costs
- ``Q``: ``publish_nowait(Event(T, DATA, SOURCE))`` to 1 sync receiver,
  waiting for the last one's future: the publisher's and the worker
  thread's instructions together
- ``history``: ``History.record`` of one report into a full ring of 1,000
- ``S1-otel-noop`` / ``A1-otel-noop``: S1 and A1 on a bus instrumented by
  :mod:`blinker_events.otel` with OpenTelemetry's no-op providers, and
  ``S1-otel-sdk`` / ``A1-otel-sdk``: with the SDK recording every span (to
  an exporter that drops them) and every measurement
- ``contextvar``: the cycle guard's ``get``, ``set`` and ``reset`` the way
  the dispatch code calls them today (``HANDLING.get()`` on the module-level
  variable), and ``contextvar-bound``: through ``_context``'s pre-bound
  functions, which is what the call sites would switch to

Needs valgrind (``apt-get install valgrind``). Counts are for the Python
running this script; run it with each Python to compare them.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PRELUDE = """
import sys
from enum import auto
from blinker_events import Event, EventBus, EventType
class T(EventType):
    EVENT = auto()
# Read once, as the blinker cases' signal is: on 3.11 ``T.EVENT`` runs
# EnumType.__getattr__'s slot hook (~950 instructions; see bench.py).
EVENT = T.EVENT
DATA = {"order": 1}
SOURCE = "bench"
N = int(sys.argv[1])
"""

_OTEL_NOOP = (
    "from opentelemetry.trace import NoOpTracerProvider\n"
    "from opentelemetry.metrics import NoOpMeterProvider\n"
    "from blinker_events import otel\n"
    "bus = EventBus(timeout=5.0, history_size=1000)\n"
    "otel.instrument(bus, tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())\n"
)
_OTEL_SDK = (
    "from opentelemetry.sdk.trace import TracerProvider\n"
    "from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult\n"
    "from opentelemetry.sdk.metrics import MeterProvider\n"
    "from opentelemetry.sdk.metrics.export import InMemoryMetricReader\n"
    "from blinker_events import otel\n"
    "class Drop(SpanExporter):\n"
    "    def export(self, spans): return SpanExportResult.SUCCESS\n"
    "tracer_provider = TracerProvider()\n"
    "tracer_provider.add_span_processor(SimpleSpanProcessor(Drop()))\n"
    "meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])\n"
    "bus = EventBus(timeout=5.0, history_size=1000)\n"
    "otel.instrument(bus, tracer_provider=tracer_provider, meter_provider=meter_provider)\n"
)

#: name -> (set-up, loop body, ``async``?). The body runs N times with ``i``
#: as the loop variable; set-up runs once, then the body 200 times to warm up
#: (3.11's specialising interpreter needs a few runs of each instruction).
CASES: dict[str, tuple[str, str, bool]] = {
    "loop": ("", "pass", False),
    "S1": (
        "bus = EventBus(timeout=5.0, history_size=1000)\n"
        "def receiver(event): pass\n"
        "bus.subscribe(T.EVENT, receiver)\n"
        "publish = bus.publish_sync",
        "publish(Event(EVENT, DATA, SOURCE))",
        False,
    ),
    "S10": (
        "bus = EventBus(timeout=5.0, history_size=1000)\n"
        "for _ in range(10):\n"
        "    def receiver(event): pass\n"
        "    bus.subscribe(T.EVENT, receiver)\n"
        "publish = bus.publish_sync",
        "publish(Event(EVENT, DATA, SOURCE))",
        False,
    ),
    "S1-prebuilt": (
        "bus = EventBus(timeout=5.0, history_size=1000)\n"
        "def receiver(event): pass\n"
        "bus.subscribe(T.EVENT, receiver)\n"
        "publish = bus.publish_sync\n"
        "ev = Event(T.EVENT, DATA, SOURCE)",
        "publish(ev)",
        False,
    ),
    "event": ("", "Event(EVENT, DATA, SOURCE)", False),
    "blinker": (
        "import blinker\n"
        "sig = blinker.Signal()\n"
        "def receiver(sender, **kwargs): pass\n"
        "sig.connect(receiver, weak=False)\n"
        "send = sig.send",
        "send(SOURCE, **DATA)",
        False,
    ),
    "blinker10": (
        "import blinker\n"
        "sig = blinker.Signal()\n"
        "for _ in range(10):\n"
        "    def receiver(sender, **kwargs): pass\n"
        "    sig.connect(receiver, weak=False)\n"
        "send = sig.send",
        "send(SOURCE, **DATA)",
        False,
    ),
    "A1": (
        "bus = EventBus(timeout=5.0, history_size=1000)\n"
        "async def receiver(event): pass\n"
        "bus.subscribe(T.EVENT, receiver)\n"
        "publish = bus.publish",
        "await publish(Event(EVENT, DATA, SOURCE))",
        True,
    ),
    "A10": (
        "bus = EventBus(timeout=5.0, history_size=1000)\n"
        "for _ in range(10):\n"
        "    async def receiver(event): pass\n"
        "    bus.subscribe(T.EVENT, receiver)\n"
        "publish = bus.publish",
        "await publish(Event(EVENT, DATA, SOURCE))",
        True,
    ),
    # The floor of "each receiver its own task" on this Python: ten tasks of
    # a no-op coroutine made and run, with one yield to let them run, and
    # nothing else (no timeouts, no outcomes, no waiting beyond that yield).
    "tasks10": (
        "import asyncio\n"
        "async def receiver(): pass\n"
        "async def ten():\n"
        "    loop = asyncio.get_running_loop()\n"
        "    for _ in range(10): loop.create_task(receiver())\n"
        "    await asyncio.sleep(0)",
        "await ten()",
        True,
    ),
    "django-async": (
        "import django\n"
        "from django.conf import settings\n"
        "settings.configure()\n"
        "from django.dispatch import Signal\n"
        "sig = Signal()\n"
        "for _ in range(10):\n"
        "    async def receiver(sender, **kwargs): pass\n"
        "    sig.connect(receiver, weak=False)\n"
        "send = sig.asend",
        "await send(SOURCE, **DATA)",
        True,
    ),
    "blinker-async": (
        "import blinker\n"
        "sig = blinker.Signal()\n"
        "async def receiver(sender, **kwargs): pass\n"
        "sig.connect(receiver, weak=False)\n"
        "send = sig.send_async",
        "await send(SOURCE, **DATA)",
        True,
    ),
    "history": (
        "from blinker_events._history import History\n"
        "from blinker_events._report import DeliveryReport\n"
        "history = History(1000)\n"
        "report = DeliveryReport(Event(T.EVENT, DATA, SOURCE))\n"
        "for _ in range(1000): history.record(report)\n"
        "record = history.record",
        "record(report)",
        False,
    ),
    # What a receiver call pays for the cycle guard, written as _sync.py
    # writes it: the frame tuple, set, reset; plus the publish's one get.
    "contextvar": (
        "from blinker_events._context import HANDLING\nframe = (None, ())",
        "HANDLING.get(); token = HANDLING.set(frame); HANDLING.reset(token)",
        False,
    ),
    # publish_nowait end to end: the publisher's and the worker's
    # instructions together (callgrind counts every thread), per event.
    "Q": (
        "bus = EventBus(timeout=5.0, history_size=1000)\n"
        "def receiver(event): pass\n"
        "bus.subscribe(T.EVENT, receiver)\n"
        "publish = bus.publish_nowait",
        "last = publish(Event(EVENT, DATA, SOURCE))",
        False,
    ),
    # The cost of blinker_events.otel: S1 and A1 on a bus instrumented with
    # the API's no-op providers (what a library user pays when the
    # application installed no SDK), and with the SDK recording every span
    # (to an exporter that drops them) and every measurement (in memory).
    "S1-otel-noop": (
        _OTEL_NOOP + "def receiver(event): pass\nbus.subscribe(T.EVENT, receiver)\npublish = bus.publish_sync",
        "publish(Event(EVENT, DATA, SOURCE))",
        False,
    ),
    "S1-otel-sdk": (
        _OTEL_SDK + "def receiver(event): pass\nbus.subscribe(T.EVENT, receiver)\npublish = bus.publish_sync",
        "publish(Event(EVENT, DATA, SOURCE))",
        False,
    ),
    "A1-otel-noop": (
        _OTEL_NOOP + "async def receiver(event): pass\nbus.subscribe(T.EVENT, receiver)\npublish = bus.publish",
        "await publish(Event(EVENT, DATA, SOURCE))",
        True,
    ),
    "A1-otel-sdk": (
        _OTEL_SDK + "async def receiver(event): pass\nbus.subscribe(T.EVENT, receiver)\npublish = bus.publish",
        "await publish(Event(EVENT, DATA, SOURCE))",
        True,
    ),
    "contextvar-bound": (
        "from blinker_events._context import get_handling, set_handling, reset_handling\nframe = (None, ())",
        "get_handling(); token = set_handling(frame); reset_handling(token)",
        False,
    ),
}


def program(case: str) -> str:
    setup, body, is_async = CASES[case]
    if is_async:
        loop_code = (
            "import asyncio\n"
            "async def main(n):\n"
            "    for i in range(n):\n"
            f"        {body}\n"
            "loop = asyncio.new_event_loop()\n"
            "loop.run_until_complete(main(200))\n"
            "loop.run_until_complete(main(N))\n"
        )
    else:
        # A function, not module level: its locals are fast locals, as in
        # any real caller (module-level names would be dict look-ups).
        # ``last``: a queued case waits for its last event (FIFO: all done).
        loop_code = (
            f"def main(n):\n    last = None\n    for i in range(n):\n        {body}\n"
            "    if last is not None and hasattr(last, 'result'):\n        last.result(timeout=120)\n"
            "main(200)\nmain(N)\n"
        )
    # Set-up names are read by the loop as globals, as the bench does too.
    return _PRELUDE + setup + "\n" + loop_code


def callgrind(case: str, n: int, tree: Path, out: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-c",
            program(case),
            str(n),
        ],
        env=env,
        check=True,
        capture_output=True,
        cwd=tree,
    )
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


_ANNOTATED = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$")


def per_function(path: Path) -> dict[str, int]:
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(path)], capture_output=True, text=True, check=True
    ).stdout
    costs: dict[str, int] = {}
    body = text.split("file:function", 1)[-1]
    for line in body.splitlines():
        match = _ANNOTATED.match(line)
        if match:
            name = re.sub(r"\s*\[[^\]]*\]$", "", match.group(2)).strip()
            # CPython's build paths say nothing; keep "ceval.c:function".
            file, _, function = name.rpartition(":")
            name = f"{os.path.basename(file)}:{function}" if file else function
            costs[name] = costs.get(name, 0) + int(match.group(1).replace(",", ""))
    return costs


def measure(case: str, small: int, large: int, tree: Path, split: int) -> tuple[float, list[tuple[str, float]]]:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp, "small.out"), Path(tmp, "large.out")
        total_a = callgrind(case, small, tree, a)
        total_b = callgrind(case, large, tree, b)
        per = (total_b - total_a) / (large - small)
        rows: list[tuple[str, float]] = []
        if split:
            fa, fb = per_function(a), per_function(b)
            diff = {name: (fb.get(name, 0) - fa.get(name, 0)) / (large - small) for name in fb}
            rows = sorted(diff.items(), key=lambda item: -item[1])[:split]
    return per, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases (default: all)")
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=12000)
    parser.add_argument("--split", type=int, default=0, help="show the N costliest C functions per iteration")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose blinker_events to measure")
    parser.add_argument(
        "--adhoc",
        nargs=2,
        metavar=("SETUP", "BODY"),
        help="measure one statement of your own instead (prelude names: Event, EventBus, T, DATA, SOURCE)",
    )
    args = parser.parse_args(argv)
    if args.adhoc:
        CASES["adhoc"] = (args.adhoc[0].replace("\\n", "\n"), args.adhoc[1], args.adhoc[1].startswith("await "))
        args.cases = "adhoc"
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases: {', '.join(unknown)}")
    tree = args.tree.resolve()
    print(f"Python {sys.version.split()[0]}, package from {tree}")
    baseline, _ = measure("loop", args.small, args.large, tree, 0)
    print(f"  {'loop':18s} {baseline:10,.0f} instructions per iteration (subtracted below)")
    for case in cases:
        if case == "loop":
            continue
        try:
            per, rows = measure(case, args.small, args.large, tree, args.split)
        except subprocess.CalledProcessError as exc:
            # A tree without this case's names (contextvar-bound on an old
            # revision): say so and go on with the others.
            last = exc.stderr.decode(errors="replace").strip().splitlines()[-1:] if exc.stderr else []
            print(f"  {case:18s} failed: {' '.join(last)}")
            continue
        print(f"  {case:18s} {per - baseline:10,.0f} instructions per iteration", flush=True)
        for name, cost in rows:
            print(f"      {cost:9,.0f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
