"""The smoke test of an installed wheel; release.py runs it in a fresh venv
in a temporary directory, with the checkout's path as its argument (which
must not be where the package comes from)."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import subprocess
import sys
from pathlib import Path

import blinker_events
import blinker_events.asgi
import blinker_events.django
import blinker_events.fastapi
import blinker_events.flask
import blinker_events.flow
import blinker_events.lowlevel
import blinker_events.otel
import blinker_events.redis

checkout = Path(sys.argv[1]).resolve()
package = Path(blinker_events.__file__).resolve()
assert not package.is_relative_to(checkout), f"imported from the checkout: {package}"
assert package.is_relative_to(Path(sys.prefix).resolve()), f"not imported from the venv: {package}"

installed = importlib.metadata.version("blinker-events")
assert blinker_events.__version__ == installed, (blinker_events.__version__, installed)
assert importlib.resources.files("blinker_events").joinpath("py.typed").is_file(), "no py.typed"
licence = [f for f in importlib.metadata.distribution("blinker-events").files or [] if f.name == "LICENSE"]
assert licence, "no LICENSE in the installed dist-info"
assert "MIT License" in licence[0].read_text()

demo_command = [sys.executable, "-m", "blinker_events", "demo"]
demo = subprocess.run(demo_command, check=False, capture_output=True, text=True, timeout=120)
assert demo.returncode == 0, demo.stderr
assert "== history, oldest first" in demo.stdout, demo.stdout

program = subprocess.run([sys.executable, "typed_user.py"], check=False, capture_output=True, text=True, timeout=60)
assert program.returncode == 0, program.stderr
assert program.stdout == "billed order 42\nreceivers that succeeded: 1\n", program.stdout

mypy = [sys.executable, "-m", "mypy", "--strict", "--no-incremental"]
typed = subprocess.run([*mypy, "typed_user.py"], check=False, capture_output=True, text=True, timeout=300)
assert typed.returncode == 0, typed.stdout + typed.stderr

# mypy must see the package's types, not Any: a wrong call is an error.
Path("wrong_user.py").write_text("import blinker_events\n\nblinker_events.publish_sync(42)\n")
wrong = subprocess.run([*mypy, "wrong_user.py"], check=False, capture_output=True, text=True, timeout=300)
assert wrong.returncode == 1, wrong.stdout + wrong.stderr
assert 'incompatible type "int"; expected "Event"' in wrong.stdout, wrong.stdout

integrations = (
    blinker_events.asgi,
    blinker_events.django,
    blinker_events.fastapi,
    blinker_events.flask,
    blinker_events.flow,
    blinker_events.otel,
)
for module in (*integrations, blinker_events.lowlevel, blinker_events.redis):
    assert Path(module.__file__ or "").resolve().is_relative_to(package.parent), module
print(f"blinker-events {installed} from {package.parent}: import, demo, py.typed, LICENSE, mypy --strict ok")
