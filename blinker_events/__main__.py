"""Usage: python -m blinker_events demo | bench [--help]

``bench`` runs benchmarks/bench.py from a source checkout (it needs the
``bench`` dependency group and the ``django`` extra).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if argv[:1] == ["demo"]:
        from ._demo import run_demo

        run_demo()
        return 0
    if argv[:1] == ["bench"]:
        checkout = Path(__file__).resolve().parent.parent
        if not (checkout / "benchmarks" / "bench.py").exists():
            print("bench runs from a source checkout (benchmarks/bench.py)", file=sys.stderr)
            return 2
        sys.path.insert(0, str(checkout))
        from benchmarks.bench import main as bench_main

        return bench_main(argv[1:])
    if argv[:1] in (["--help"], ["-h"]):
        print(__doc__.strip())
        return 0
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
