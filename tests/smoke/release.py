"""Build the distributions and try them as a user gets them (``dev.py build``
and ``dev.py smoke``).

Runs on the Python running dev.py, standard library only; ``python`` is the
development venv, which has the ``build`` dependency group (build, twine).
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
#: What ``pip install "blinker-events[...]"`` offers; development tools are
#: dependency groups, which never reach the published metadata.
EXTRAS = {"flask", "django", "redis", "fast", "asgi", "fastapi", "otel"}
URLS = {"Documentation", "Changelog", "Source", "Issues"}


def source_version() -> str:
    text = (ROOT / "blinker_events" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if not found:
        sys.exit("blinker_events/__init__.py defines no __version__")
    return found.group(1)


def run(*command: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
    print("$", " ".join(str(part) for part in command), flush=True)
    if code := subprocess.call([str(part) for part in command], cwd=cwd, env=env):
        sys.exit(f"release check failed: {Path(command[0]).name} exited {code}")


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"release check failed: {message}")


def build_and_check(python: str) -> Path:
    """Build the sdist and the wheel into ``dist/``, ``twine check --strict``
    them and check what they hold. Returns the wheel."""
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    run(python, "-m", "build", "--outdir", dist, ROOT)
    version = source_version()
    wheel = dist / f"blinker_events-{version}-py3-none-any.whl"
    sdist = dist / f"blinker_events-{version}.tar.gz"
    check(sorted(dist.iterdir()) == sorted([wheel, sdist]), f"dist/ holds {sorted(p.name for p in dist.iterdir())}")
    run(python, "-m", "twine", "check", "--strict", sdist, wheel)

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"blinker_events-{version}.dist-info/METADATA").decode()
    check(f"blinker_events-{version}.dist-info/licenses/LICENSE" in names, "the wheel has no LICENSE")
    check("blinker_events/py.typed" in names, "the wheel has no blinker_events/py.typed")
    check(
        not any(name.startswith(("tests/", "benchmarks/", "examples/")) for name in names), "the wheel ships dev files"
    )
    fields = email.parser.Parser().parsestr(metadata)
    check(fields["Version"] == version, f"the wheel's version {fields['Version']} is not {version}")
    check(fields["License-Expression"] == "MIT", "the wheel's licence is not MIT")
    check(set(fields.get_all("Provides-Extra") or []) == EXTRAS, f"extras {fields.get_all('Provides-Extra')}")
    urls = {url.split(",")[0] for url in fields.get_all("Project-URL") or []}
    check(urls == URLS, f"project URLs {sorted(urls)}")
    description = fields.get_payload()
    check("python3 dev.py demo" in description, "the long description is not the README")
    relative = re.findall(r"\]\(((?!https?://|#|mailto:)[^)\s]+)\)", description)
    check(not relative, f"the long description links to files of the checkout: {relative}")

    with tarfile.open(sdist) as archive:
        members = set(archive.getnames())
    for name in ("LICENSE", "CHANGELOG.md", "README.md", "blinker_events/py.typed"):
        check(f"blinker_events-{version}/{name}" in members, f"the sdist has no {name}")
    print(f"== built and checked {sdist.name} and {wheel.name}", flush=True)
    return wheel


def smoke_test(wheel: Path) -> int:
    """Install ``wheel`` into a fresh venv in a temporary directory and run
    check_install.py there, with the checkout nowhere on the path."""
    with tempfile.TemporaryDirectory(prefix="blinker-events-smoke-") as tmp:
        where = Path(tmp)
        run(sys.executable, "-m", "venv", where / "venv", cwd=where)
        python = where / "venv" / "bin" / "python"
        # With the integrations' extras, so that their modules are tried too.
        with_extras = f"{wheel}[flask,django,redis,fastapi,otel]"
        pip = (python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check")
        run(*pip, with_extras, "mypy>=1.11", cwd=where)
        for name in ("check_install.py", "typed_user.py"):
            shutil.copy(HERE / name, where / name)
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
        run(python, "check_install.py", str(ROOT), cwd=where, env=env)
    print("== smoke test passed: the wheel works installed outside the checkout", flush=True)
    return 0
