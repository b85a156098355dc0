"""``python -m blinker_events demo`` | ``bench [options]``"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if argv[:1] == ["demo"]:
        from ._demo import run_demo

        run_demo()
        return 0
    if argv[:1] == ["bench"]:
        from ._bench import main as bench_main

        return bench_main(argv[1:])
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
