"""The Flask example: ``create_app()`` makes the orders app (see ``app.py``)."""

from .app import create_app, events, main

__all__ = ["create_app", "events", "main"]
