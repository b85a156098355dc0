"""``python -m examples.django_project [--port N]``: migrate, then serve the
example under uvicorn (ASGI) on http://127.0.0.1:8000 (``runserver``, WSGI,
when uvicorn is not installed).

    POST/GET /orders         sync view: create an order, publish on commit
    POST/GET /orders/async   async view: create an order, ``await publish``
    GET      /events         recent events of the default bus
"""

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.django_project")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_project.project.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    try:
        import uvicorn
    except ImportError:
        call_command("runserver", f"{args.host}:{args.port}")
        return 0
    print(f"blinker_events Django example on http://{args.host}:{args.port}/events", flush=True)
    uvicorn.run("examples.django_project.project.asgi:application", host=args.host, port=args.port, lifespan="off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
