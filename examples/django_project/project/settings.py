"""Settings of the example project (development only: DEBUG on, a fixed key)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "blinker_events.django",
    "examples.django_project.orders",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "examples.django_project.project.urls"
ASGI_APPLICATION = "examples.django_project.project.asgi.application"
WSGI_APPLICATION = "examples.django_project.project.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # BLINKER_EVENTS_EXAMPLE_DB: put the database elsewhere (the tests do).
        "NAME": os.environ.get("BLINKER_EVENTS_EXAMPLE_DB", str(BASE_DIR / "db.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

BLINKER_EVENTS = {
    "TIMEOUT": 5.0,
    "HISTORY_SIZE": 200,
    # "SYNC_EXECUTOR": "thread_sensitive" is the default under Django.
    "SIGNALS": [
        {
            "signal": "django.db.models.signals.post_save",
            "sender": "orders.Order",
            "event_type": "orders.order_saved",
        },
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "blinker_events": {"handlers": ["console"], "level": "INFO"},
        "examples.django_project": {"handlers": ["console"], "level": "INFO"},
    },
}
