#!/usr/bin/env python3
"""Development tasks; needs nothing but Python 3.11+ with pip and venv.

    python3 dev.py demo     run the demo
    python3 dev.py test     run the whole test suite (extra args go to pytest)
    python3 dev.py lint     ruff check, ruff format --check, mypy --strict
    python3 dev.py bench    run the benchmarks (extra args go to the bench command)
    python3 dev.py docs     build the docs site into docs/_build/html (warnings are errors)
    python3 dev.py flask-example   run the Flask example app on http://127.0.0.1:5000
    python3 dev.py django-example  run the Django example on http://127.0.0.1:8000
    python3 dev.py redis-example   three processes sharing events through a throwaway redis-server

Each task first makes a virtual environment for the Python running this
script (``.venv-py3.X``) and installs the project with what the task needs;
it is reused while pyproject.toml is unchanged.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
EXTRAS = {
    "demo": "",
    "test": "[dev]",
    "lint": "[dev]",
    "bench": "[dev,bench]",
    "flask-example": "[flask]",
    "django-example": "[dev]",
    "redis-example": "[redis]",
}
RUNS = {
    "demo": ["-m", "blinker_events", "demo"],
    "test": ["-m", "pytest"],
    "bench": ["-m", "blinker_events", "bench"],
    "flask-example": ["-m", "examples.flask_app"],
    "django-example": ["-m", "examples.django_project"],
    "redis-example": ["-m", "examples.redis_nodes"],
}

# The docs site: Sphinx, and the integrations importable for the API reference.
EXTRAS["docs"] = "[flask,django,redis,fast,docs]"
# -n: every cross-reference must resolve; -W --keep-going: all warnings shown, then fail.
RUNS["docs"] = ["-m", "sphinx", "-W", "--keep-going", "-n", "-b", "html", "docs", "docs/_build/html"]


def venv_python(extras: str) -> Path:
    if sys.version_info < (3, 11):
        sys.exit(f"blinker_events needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    venv = ROOT / f".venv-py{sys.version_info.major}.{sys.version_info.minor}"
    python = venv / "bin" / "python"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    stamp = venv / f".installed-{digest[:16]}"
    if not stamp.exists():
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}{extras}"], check=True)
        for old in venv.glob(".installed-*"):
            old.unlink()
        stamp.touch()
    return python


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
    python = str(venv_python(EXTRAS[task]))
    os.chdir(ROOT)
    if task == "test":
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
