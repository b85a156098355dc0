"""The example app: orders, whose receivers live in ``events.py``."""
