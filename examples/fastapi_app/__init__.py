"""The FastAPI example: ``create_app()`` makes the orders app (see ``app.py``)."""

from .app import create_app, main

__all__ = ["create_app", "main"]
