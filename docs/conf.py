"""Sphinx configuration: MyST Markdown pages, the API reference from the
docstrings (autodoc), the furo theme. Build with ``python3 dev.py docs``."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import blinker_events  # noqa: E402

project = "blinker_events"
author = "The blinker_events developers"
copyright = "The blinker_events developers"
release = blinker_events.__version__
version = ".".join(release.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

html_theme = "furo"
html_title = "blinker_events"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

# -n (nitpicky) makes every unresolved cross-reference an error. The
# inventories of Python, blinker, Flask, Django and redis-py cannot be fetched
# offline, so names from those libraries stay unresolved; only they are let
# through, and the typing helpers of the annotations.
nitpicky = True
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(asyncio|collections|concurrent|contextlib|contextvars|datetime|enum|json|logging|pathlib|reprlib|subprocess"
        r"|threading|types|typing|weakref)"
        r"(\..+)?",
    ),
    (r"py:.*", r"(blinker|flask|werkzeug|django|redis|asgiref|starlette|fastapi)(\..+)?"),
]
nitpick_ignore = [
    # Python's built-in classes and exceptions (int, TypeError, ExceptionGroup, ...).
    *(
        (role, name)
        for name in dir(builtins)
        if isinstance(getattr(builtins, name), type)
        for role in ("py:class", "py:exc")
    ),
    ("py:class", "t.Self"),  # typing.Self, as _compat spells it
    ("py:class", "Flask"),  # flask.Flask, imported for type checking only
    ("py:class", "Starlette"),  # starlette.applications.Starlette, in blinker_events.asgi's annotations
    # Private Protocols and classes that annotations name; the parameter's
    # description says which public object to pass.
    ("py:class", "GuardingBus"),
    ("py:class", "Owner"),
    ("py:class", "blinker_events._lifecycle.Managed"),
    ("py:class", "blinker_events._threads.LoopThread"),
    ("py:class", "F"),  # the decorator TypeVar of subscribe
    ("py:class", "blinker_events._bus.F"),
    # subscribe's typing helpers for typed event classes (the event class,
    # a receiver's return type, the keyword options), and the event types
    # that are not classes: the overloads' annotations name them.
    ("py:class", "blinker_events._typed.E"),
    ("py:class", "blinker_events._typed.R"),
    ("py:class", "blinker_events._typed.Options"),
    ("py:class", "PlainEventType"),
    ("py:class", "AnyEventType"),  # type_matcher's: any event type, as EventTypeLike
    # The waiting and streaming functions' annotations: the event class they
    # yield, the predicate's and the observed bus's types, the history.
    ("py:class", "blinker_events._waiting.E"),
    ("py:class", "blinker_events.lowlevel.T"),  # BusLoop.submit's result type
    ("py:obj", "blinker_events._waiting.E"),
    ("py:class", "Predicate"),
    ("py:class", "Observable"),
    ("py:class", "blinker_events._waiting.Observable"),
    ("py:class", "History"),
]

#: The modules of the API reference; every name in their ``__all__`` must be
#: documented there, or the build fails.
API_MODULES = (
    "blinker_events",
    "blinker_events.lowlevel",
    "blinker_events.flask",
    "blinker_events.django",
    "blinker_events.redis",
    "blinker_events.redis.testing",
    "blinker_events.testing",
)


def _check_public_names(app, env):  # type: ignore[no-untyped-def]
    import importlib

    from sphinx.util import logging as sphinx_logging

    documented = set(env.get_domain("py").objects)
    for name in API_MODULES:
        module = importlib.import_module(name)
        for public in module.__all__:
            if f"{name}.{public}" not in documented:
                sphinx_logging.getLogger(__name__).warning(
                    "public name %s.%s is not in the API reference", name, public
                )


def _user_facing(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
    # The package docstring may go on to describe its private layers for
    # maintainers; the reference keeps what comes before.
    if what == "module" and name == "blinker_events":
        layers = [i for i, line in enumerate(lines) if line.startswith("The package is layered")]
        if layers:
            del lines[layers[0] :]


def _public_bases(app, name, obj, options, bases):  # type: ignore[no-untyped-def]
    # A public class may inherit from a private one that only splits its
    # code up (EventBus's settings methods); the reference does not name it,
    # and documents its members on the public class (see api.md).
    bases[:] = [base for base in bases if not base.__module__.startswith("blinker_events._")] or [object]


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("env-check-consistency", _check_public_names)
    app.connect("autodoc-process-docstring", _user_facing)
