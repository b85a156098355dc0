#!/usr/bin/env python3
"""Development tasks; needs nothing but Python 3.11+ with pip and venv.

    python3 dev.py demo     run the demo
    python3 dev.py test     run the whole test suite (extra args go to pytest)
    python3 dev.py test --lowest   ... with the lowest declared versions of the dependencies
    python3 dev.py test --newest   ... with the newest versions there are
    python3 dev.py lint     ruff check, ruff format --check, mypy --strict
    python3 dev.py bench    run the benchmarks (extra args go to the bench command)
    python3 dev.py docs     build the docs site into docs/_build/html (warnings are errors)
    python3 dev.py flask-example   run the Flask example app on http://127.0.0.1:5000
    python3 dev.py django-example  run the Django example on http://127.0.0.1:8000
    python3 dev.py redis-example   three processes sharing events through a throwaway redis-server
    python3 dev.py fastapi-example the FastAPI example under uvicorn on http://127.0.0.1:8001
    python3 dev.py build    build the sdist and wheel into dist/ and check them (twine check --strict)
    python3 dev.py smoke    build, then install the wheel in a fresh venv outside the checkout and try it

Each task first makes a virtual environment for the Python running this
script (``.venv-py3.X``) and installs the project with the extras and the
dependency groups the task needs; it is reused while pyproject.toml is
unchanged.
"""

from __future__ import annotations

import glob
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
EXTRAS = {
    "demo": "",
    "test": "[flask,django,redis,fast,asgi,fastapi,otel]",
    "lint": "[flask,django,redis,fast,asgi,fastapi,otel]",
    "bench": "[flask,django,redis,fast,asgi,fastapi,otel]",
    "flask-example": "[flask]",
    "django-example": "[flask,django,redis,fast,asgi,fastapi,otel]",
    "redis-example": "[redis]",
    "fastapi-example": "[fastapi]",
    "build": "[flask,django,redis,fast,asgi,fastapi,otel]",
    "smoke": "[flask,django,redis,fast,asgi,fastapi,otel]",
    # The docs site: the integrations importable for the API reference.
    "docs": "[flask,django,redis,fast,asgi,fastapi,otel]",
}
#: The PEP 735 dependency groups (pyproject.toml) each task installs too.
GROUPS = {
    "test": ("dev",),
    "lint": ("dev",),
    "bench": ("dev", "bench"),
    "django-example": ("dev",),
    "fastapi-example": ("dev",),  # uvicorn is in the test group
    "build": ("dev",),
    "smoke": ("dev",),
    "docs": ("docs",),
}
#: The dependencies whose declared lower bounds ``test --lowest`` installs.
RANGE_TESTED = ("blinker", "asgiref", "flask", "django", "redis", "msgspec", "starlette", "fastapi")
RUNS = {
    "demo": ["-m", "blinker_events", "demo"],
    "test": ["-m", "pytest"],
    "bench": ["-m", "blinker_events", "bench"],
    "flask-example": ["-m", "examples.flask_app"],
    "django-example": ["-m", "examples.django_project"],
    "redis-example": ["-m", "examples.redis_nodes"],
    "fastapi-example": ["-m", "examples.fastapi_app"],
    # -E: every page read afresh, as on a clean clone (an incremental build
    # checks only the pages that changed, and misses links into them);
    # -n: every cross-reference must resolve; -W --keep-going: every warning
    # shown, then the build fails.
    "docs": ["-m", "sphinx", "-E", "-W", "--keep-going", "-n", "-b", "html", "docs", "docs/_build/html"],
}


def venv_python(extras: str, groups: tuple[str, ...] = (), variant: str = "") -> Path:
    """The venv's python, installed with ``extras`` and ``groups``. A
    ``variant`` ("lowest", "newest") is a venv of its own: "lowest" pins
    the lower bounds pyproject.toml declares, "newest" upgrades everything
    on every run."""
    if sys.version_info < (3, 11):
        sys.exit(f"blinker_events needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    suffix = f"-{variant}" if variant else ""
    venv = ROOT / f".venv-py{sys.version_info.major}.{sys.version_info.minor}{suffix}"
    python = venv / "bin" / "python"
    spec = f"{extras}|{','.join(groups)}|{variant}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + spec.encode()).hexdigest()
    stamp = venv / f".installed-{digest[:16]}"
    if python.exists() and _venv_version(venv) != platform.python_version():
        # Made by another patch release of this X.Y (Debian's, say, then
        # pyenv's): its python is that one, so it is made again for this one.
        print(f"dev.py: {venv.name} was made by Python {_venv_version(venv)}; making it again", file=sys.stderr)
        shutil.rmtree(venv)
    if not stamp.exists() or variant == "newest":
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        # The Pythons' own pips are older than 25.1, the first that installs
        # dependency groups (--group).
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        options = [arg for group in groups for arg in ("--group", f"{ROOT / 'pyproject.toml'}:{group}")]
        if variant == "lowest":
            constraints = venv / "lowest-constraints.txt"
            constraints.write_text("".join(f"{pin}\n" for pin in lowest_pins()))
            options += ["--constraint", str(constraints)]
        elif variant == "newest":
            options += ["--upgrade", "--upgrade-strategy", "eager"]
        subprocess.run([*pip, *options, "-e", f"{ROOT}{extras}"], check=True)
        for old in venv.glob(".installed-*"):
            old.unlink()
        stamp.touch()
    return python


def _venv_version(venv: Path) -> str:
    """The Python version ``venv`` was made with (its pyvenv.cfg says)."""
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return value.strip()
    return ""


def lowest_pins() -> list[str]:
    """``name==lower`` for each of RANGE_TESTED, from the ``>=`` bounds in
    pyproject.toml's dependencies and extras."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    pins = {}
    for requirement in declared:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        lower = re.search(r">=\s*([^,;\s]+)", requirement)
        if name and lower and name.group().lower() in RANGE_TESTED:
            pins[name.group().lower()] = f"{name.group().lower()}=={lower.group(1)}"
    if missing := set(RANGE_TESTED) - pins.keys():
        sys.exit(f"pyproject.toml declares no lower bound for {', '.join(sorted(missing))}")
    return [pins[name] for name in RANGE_TESTED]


def print_versions(python: str) -> None:
    script = "import importlib.metadata as m, sys; print(', '.join(f'{n} {m.version(n)}' for n in sys.argv[1:]))"
    subprocess.run([python, "-c", script, *RANGE_TESTED], check=True)


#: The Debian packages of the servers the tests start (redis-server for the
#: Redis bridge, postgresql for the Django connection tests), and how to
#: tell each is installed (Debian keeps PostgreSQL's programs off PATH).
SERVERS = {
    "redis-server": lambda: bool(shutil.which("redis-server")),
    "postgresql": lambda: bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")),
}


def ensure_servers(*packages: str) -> None:
    """Install the missing ones of ``packages`` when this user can (root
    with apt-get). Otherwise the tests needing them are skipped (and fail
    under CI, where a missing server is a broken setup)."""
    missing = [package for package in packages if not SERVERS[package]()]
    if not missing:
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print(f"installing {' '.join(missing)} (apt-get) for the tests", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)
    else:
        print(f"{', '.join(missing)} not installed: the tests that need it will be skipped", flush=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    task, rest = argv[0], argv[1:]
    variant = ""
    if task == "test" and rest[:1] in (["--lowest"], ["--newest"]):
        variant, rest = rest[0].removeprefix("--"), rest[1:]
    python = str(venv_python(EXTRAS[task], GROUPS.get(task, ()), variant))
    os.chdir(ROOT)
    if task in ("build", "smoke"):
        from tests.smoke.release import build_and_check, smoke_test

        dist = build_and_check(python)
        return smoke_test(dist) if task == "smoke" else 0
    if task == "test":
        if variant:
            print(f"== {variant} versions:", end=" ", flush=True)
            print_versions(python)
        ensure_servers("redis-server", "postgresql")
    elif task in ("bench", "redis-example"):
        ensure_servers("redis-server")
    if task in RUNS:
        return subprocess.call([python, *RUNS[task], *rest])
    bindir = Path(python).parent
    for command in (
        [str(bindir / "ruff"), "check", "."],
        [str(bindir / "ruff"), "format", "--check", "."],
        [str(bindir / "mypy"), "--strict", "blinker_events"],
    ):
        print("$", " ".join(command[:1] and [Path(command[0]).name, *command[1:]]), flush=True)
        if code := subprocess.call(command):
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
