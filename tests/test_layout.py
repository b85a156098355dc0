"""The package's shape, which the core issue set as rules: no module a
reader cannot hold in their head, no import cycle among the core modules
(``TYPE_CHECKING`` imports included), and integrations on public names only.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "blinker_events"
MAX_LINES = 450
#: Private modules at the package's top that belong to one integration,
#: not to the core (flask.py is a module, so its helper sits beside it).
INTEGRATIONS_OWN = {"_flask_config": "flask", "_asgi_request": "asgi"}


def _modules() -> dict[str, Path]:
    """Dotted name (relative to the package) -> file, for every module."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """The package modules ``name`` imports, anywhere in the file (so under
    ``if TYPE_CHECKING:`` and inside functions too)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
                targets.add(module)
                targets.update(f"{module}.{alias.name}".strip(".") for alias in node.names)
            elif node.module and node.module.startswith("blinker_events"):
                targets.add(node.module.removeprefix("blinker_events").strip("."))
        elif isinstance(node, ast.Import):
            targets.update(
                alias.name.removeprefix("blinker_events").strip(".")
                for alias in node.names
                if alias.name.startswith("blinker_events")
            )
    return targets


def _core() -> dict[str, set[str]]:
    modules = _modules()
    core = {name for name in modules if name.startswith("_") and "." not in name} - set(INTEGRATIONS_OWN)
    return {name: _imports(name, modules[name]) & core for name in core}


def test_no_module_is_longer_than_the_limit() -> None:
    lengths = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in _modules().items()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """An import cycle in ``graph`` (module -> modules it imports), as the
    path around it, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        path.append(name)
        for target in sorted(graph.get(name, ())):
            found = visit(target)
            if found is not None:
                return found
        path.pop()
        done.add(name)
        return None

    for name in sorted(graph):
        found = visit(name)
        if found is not None:
            return found
    return None


def test_the_core_modules_import_each_other_without_a_cycle() -> None:
    graph = _core()
    assert len(graph) > 30  # the check sees the core
    assert {"_bus", "_runtime", "_types", "_events"} <= set(graph)
    assert _cycle(graph) is None


def test_the_cycle_check_finds_a_cycle_and_names_its_path() -> None:
    assert _cycle({"_a": {"_b"}, "_b": {"_c"}, "_c": {"_a"}}) == ["_a", "_b", "_c", "_a"]
    assert _cycle({"_a": {"_b"}, "_b": set()}) is None


def test_integrations_import_no_private_core_module() -> None:
    private = {}
    for name, path in _modules().items():
        if name.split(".")[0] in {"flask", "django", "redis"}:
            core = {target for target in _imports(name, path) if target.startswith("_") and "." not in target}
            core -= {own for own, owner in INTEGRATIONS_OWN.items() if owner == name.split(".")[0]}
            if core:
                private[name] = sorted(core)
    assert private == {}
