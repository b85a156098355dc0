"""Compile the hot modules with mypyc into a throwaway copy of the package.

    python benchmarks/mypyc_build.py /tmp/be-mypyc [_events,_context,...]
    python benchmarks/compare.py --against /tmp/be-mypyc --only S1,A1 --repeats 3
    python benchmarks/callgrind.py --tree /tmp/be-mypyc --cases S1,A1,blinker,blinker-async

(with the dev venv's Python: mypy, which brings mypyc, is in the ``dev``
extra; a C compiler and Python's headers are needed). This only measures
what compiling would give: the package stays pure Python and is installed
as such. The copy is ``DIR/blinker_events``; the checkout is not touched.

Modules mypyc cannot compile (an unsupported construct, or a crash of
mypyc itself) are left as Python in the copy and named in the output; the
rest are compiled in one group, so calls between them are native.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The publish path's modules, in the order a publish meets them.
#: Not ``_subscription``: it compiles, but a native class cannot be weakly
#: referenced (this mypyc ignores "__weakref__" in __slots__ and has no
#: ``supports_weakref``), and subscriptions are, so subscribe would fail.
HOT = (
    "_events",
    "_context",
    "_bus",
    "_runtime",
    "_inline",
    "_on_loop",
    "_sync",
    "_async",
    "_report",
    "_outcomes",
    "_history",
    "_signals",
    "_watchdog",
)

_BUILT_INS = ("SYSTEM_STARTUP", "SYSTEM_SHUTDOWN", "SYSTEM_ERROR", "SUBSCRIBER_DISABLED")

#: Source changes the copy needs for mypyc, none of them in behaviour.
PATCHES = {
    # mypyc has no ``cls.__new__`` for a native class (an internal error).
    "_events": [
        ("event = cls.__new__(cls)", "event = object.__new__(cls)"),
        # EventType's declarations of the built-in members, for type
        # checkers: compiled, the class body reads SystemEventType before it
        # exists (NULL) and segfaults at import.
        *((f"    {name}: ClassVar[SystemEventType]\n", "") for name in _BUILT_INS),
    ],
    # A native class's methods take no docstrings after the fact: the
    # delegating methods keep their own (shorter) ones.
    "_bus": [
        ("    getattr(EventBus, _name).__doc__ = getattr(Registry, _name).__doc__\n", "    pass\n"),
        ("EventBus.bridge.__doc__ = Bridges.bridge.__doc__\n", ""),
        ("EventBus.unbridge.__doc__ = Bridges.unbridge.__doc__\n", ""),
    ],
}


def mypyc(tree: Path, modules: list[str]) -> subprocess.CompletedProcess[str]:
    mypyc_bin = Path(sys.executable).parent / "mypyc"
    paths = [f"blinker_events/{m}.py" for m in modules]
    return subprocess.run([str(mypyc_bin), *paths], cwd=tree, capture_output=True, text=True, check=False)


def build(into: Path, hot: tuple[str, ...] = HOT) -> tuple[list[str], dict[str, str]]:
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    shutil.copytree(ROOT / "blinker_events", into / "blinker_events")
    for module, changes in PATCHES.items():
        path = into / "blinker_events" / f"{module}.py"
        text = path.read_text()
        for old, new in changes:
            text = text.replace(old, new)
        path.write_text(text)
    # Find what compiles on its own, then compile those together.
    refused: dict[str, str] = {}
    for module in hot:
        result = mypyc(into, [module])
        if result.returncode:
            lines = [line for line in (result.stdout + result.stderr).splitlines() if "error" in line.lower()]
            refused[module] = lines[0].strip() if lines else f"mypyc exited with {result.returncode}"
    for built in (into / "blinker_events").glob("*.so"):
        built.unlink()
    compiled = [m for m in hot if m not in refused]
    result = mypyc(into, compiled)
    if result.returncode:
        sys.exit(f"mypyc failed on {compiled}:\n{result.stdout}{result.stderr}")
    shutil.rmtree(into / "build", ignore_errors=True)
    return compiled, refused


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        return 2
    into = Path(sys.argv[1]).resolve()
    hot = tuple(sys.argv[2].split(",")) if len(sys.argv) == 3 else HOT
    compiled, refused = build(into, hot)
    print(f"compiled into {into / 'blinker_events'}: {', '.join(compiled)}")
    for module, why in refused.items():
        print(f"left as Python: {module}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
